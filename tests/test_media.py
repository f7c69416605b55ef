"""Media decoding: frame choice, audio timing / resampling / downmix, both layouts, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from avfewshot.data import synth
from avfewshot.data.media import (
    NORM_STATS,
    MediaSpec,
    decode_clip,
    dgsct_frame_numbers,
    error_kind,
    find_media,
    load_clip,
    normalise_frames,
)
from avfewshot.errors import MediaError, UserError

SMALL = MediaSpec(image_size=32, audio_rate=16000)
DOG = synth.class_signature("ave", "Bark")
CAT = synth.class_signature("ave", "Cat")


def dominant_hz(second: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(second))
    return float(np.argmax(spectrum) * rate / second.size)


def per_second_colours(seconds):
    return [DOG.colour if s else None for s in seconds]


def write_audio_only_mp4(path, tones, rate=16000):
    """An mp4 holding only an AAC track (no video stream)."""
    import av

    samples = synth.render_audio(tones, rate, 0)[None, :]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    """Hand-made clips: good mono, stereo 44.1 kHz, wav beside a video, and broken ones."""
    root = tmp_path_factory.mktemp("media")
    video = root / "video"
    video.mkdir()
    pattern = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0]
    colours = per_second_colours(pattern)
    tones = [DOG.tone_hz if s else None for s in pattern]
    synth.write_mp4(video / "good.mp4", colours, tones, seed=1)
    synth.write_mp4(video / "stereo.mp4", colours, tones, seed=2, stereo=True)
    synth.write_mp4(video / "silent.mp4", colours, tones, audio=False)
    synth.write_mp4(video / "short.mp4", colours, tones, seconds=3)
    # a tone only in second 3, to check the audio is not shifted by AAC priming
    synth.write_mp4(video / "onset.mp4", [None] * 10, [None, None, None, CAT.tone_hz] + [None] * 6, seed=3)
    data = (video / "good.mp4").read_bytes()
    (video / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (video / "empty.mp4").write_bytes(b"")
    (video / "garbage.mp4").write_bytes(b"this is not a video" * 100)
    # wav beside a video: the wav sounds CAT everywhere, the video's own track DOG
    synth.write_mp4(video / "withwav.mp4", colours, tones, seed=4)
    (root / "audio").mkdir()
    synth.write_wav(root / "audio" / "withwav.wav", synth.render_audio([CAT.tone_hz] * 10, 16000, 0), 16000)
    # a video at the root (the other raw layout)
    synth.write_mp4(root / "toplevel.mp4", colours, tones, seed=5)
    # DG-SCT prepared layout
    synth.write_dgsct_media(root, "frames", "prepared", colours, tones, seed=6)
    synth.write_dgsct_media(root, "frame", "llpstyle", colours, tones, seed=7)
    synth.write_dgsct_media(root, "frames", "fewframes", colours, tones, seed=8)
    for jpg in sorted((root / "frames" / "fewframes").iterdir())[9:]:
        jpg.unlink()
    write_audio_only_mp4(video / "audioonly.mp4", [DOG.tone_hz] * 10)
    (video / "loop.mp4").symlink_to(video / "loop.mp4")  # a link to itself
    (video / "dangling.mp4").symlink_to(root / "nowhere" / "dangling.mp4")
    synth.write_dgsct_media(root, "frames", "shortwave", colours, tones, seed=9)
    np.save(root / "wave" / "shortwave.npy", np.zeros(32000 * 3, np.float32))
    return root


def test_frame_position_selects_the_frame_shown_at_t_plus_position(media_root):
    clip = load_clip(media_root, "good", SMALL)
    assert clip.frame_indices == tuple(4 + 8 * t for t in range(10))  # 8 fps, middle of each second
    start = load_clip(media_root, "good", MediaSpec(image_size=32, audio_rate=16000, frame_position=0.0))
    assert start.frame_indices == tuple(8 * t for t in range(10))
    late = load_clip(media_root, "good", MediaSpec(image_size=32, audio_rate=16000, frame_position=0.9))
    assert late.frame_indices == tuple(7 + 8 * t for t in range(10))


def test_decoded_shapes_colours_and_tones(media_root):
    clip = load_clip(media_root, "good", MediaSpec(image_size=40, audio_rate=32000))
    assert clip.frames.shape == (10, 40, 40, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (10, 32000) and clip.audio.dtype == np.float32
    pattern = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0]
    means = clip.frames.reshape(10, -1, 3).mean(axis=1)
    for t, on in enumerate(pattern):
        expected = synth.expected_mean_colour(DOG.colour if on else None)
        assert np.abs(means[t] - expected).max() < 12, (t, means[t], expected)
        if on:
            assert abs(dominant_hz(clip.audio[t], 32000) - DOG.tone_hz) <= 1
        else:
            assert np.abs(clip.audio[t]).max() < 0.05


def test_stereo_44k_audio_is_downmixed_and_resampled(media_root):
    for rate in (48000, 32000, 16000):
        clip = load_clip(media_root, "stereo", MediaSpec(image_size=32, audio_rate=rate))
        assert clip.audio.shape == (10, rate)
        assert abs(dominant_hz(clip.audio[2], rate) - DOG.tone_hz) <= 1
        # left = tone, right = 0.8 tone: the mono mix has amplitude 0.9 * 0.3
        assert 0.24 < np.abs(clip.audio[3]).max() < 0.30


def test_aac_priming_is_removed_deterministically(media_root):
    clip = load_clip(media_root, "onset", SMALL)
    energy = (clip.audio.astype(np.float64) ** 2).sum(axis=1)
    assert energy.argmax() == 3
    # a shift of one 1024-sample AAC frame (64 ms) would leave >6% of the tone in second 4
    assert energy[4] < 0.01 * energy[3] and energy[2] < 0.01 * energy[3]
    again = load_clip(media_root, "onset", SMALL)
    assert np.array_equal(clip.audio, again.audio) and np.array_equal(clip.frames, again.frames)


def test_audio_offset_crops_the_start(media_root):
    plain = load_clip(media_root, "onset", SMALL)
    shifted = load_clip(media_root, "onset", MediaSpec(image_size=32, audio_rate=16000, audio_offset=0.5))
    flat_plain, flat_shifted = plain.audio.reshape(-1), shifted.audio.reshape(-1)
    np.testing.assert_allclose(flat_shifted[: 16000 * 9], flat_plain[8000 : 8000 + 16000 * 9], atol=1e-4)


def test_wav_beside_the_video_is_used_unless_told_otherwise(media_root):
    files = find_media(media_root, "withwav")
    assert files.audio is not None and files.audio.name == "withwav.wav"
    auto = decode_clip(files, SMALL)
    assert abs(dominant_hz(auto.audio[0], 16000) - CAT.tone_hz) <= 1
    video = decode_clip(files, MediaSpec(image_size=32, audio_rate=16000, audio_source="video"))
    assert abs(dominant_hz(video.audio[2], 16000) - DOG.tone_hz) <= 1
    with pytest.raises(MediaError, match="no good.wav"):
        decode_clip(find_media(media_root, "good"), MediaSpec(audio_source="wav"))


def test_raw_layout_accepts_a_video_at_the_root(media_root):
    files = find_media(media_root, "toplevel")
    assert files.video == media_root / "toplevel.mp4"
    assert decode_clip(files, SMALL).audio.shape == (10, 16000)


def test_dgsct_layout_frames_and_wave(media_root):
    assert dgsct_frame_numbers(20) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 20]
    assert dgsct_frame_numbers(80) == [1, 9, 18, 27, 36, 44, 53, 62, 71, 80]
    for media_id in ("prepared", "llpstyle"):  # frames/ and LLP's frame/
        files = find_media(media_root, media_id, "dgsct")
        assert len(files.frames) == 20 and files.audio.name == f"{media_id}.npy"
        clip = decode_clip(files, MediaSpec(image_size=32, audio_rate=48000))
        assert clip.frame_indices == (0, 2, 4, 6, 8, 10, 12, 14, 16, 19)
        assert clip.audio.shape == (10, 48000)
        assert abs(dominant_hz(clip.audio[3], 48000) - DOG.tone_hz) <= 1
        means = clip.frames.reshape(10, -1, 3).mean(axis=1)
        assert np.abs(means[3] - synth.expected_mean_colour(DOG.colour)).max() < 12
        assert np.abs(means[0] - synth.expected_mean_colour(None)).max() < 12


@pytest.mark.parametrize(
    "media_id, layout, kind, phrase",
    [
        ("truncated", "raw", "undecodable", "truncated"),
        ("garbage", "raw", "undecodable", "cannot decode the video"),
        ("empty", "raw", "empty", "empty (zero-byte) file"),
        ("silent", "raw", "no_audio", "no audio stream"),
        ("audioonly", "raw", "no_video", "has no video stream (audio only)"),
        ("loop", "raw", "missing", "is a symbolic link loop"),
        ("dangling", "raw", "missing", "is a broken symbolic link (it points to"),
        ("short", "raw", "too_short", "is 3.00 s long; 10 s are needed"),
        ("absent", "raw", "missing", "video not found"),
        ("fewframes", "dgsct", "frame_count", "9 frame file(s), at least 10 are needed"),
        ("shortwave", "dgsct", "too_short", "96000 samples"),
        ("absent", "dgsct", "missing", "frame folder not found"),
    ],
)
def test_bad_media_raises_a_clear_media_error(media_root, media_id, layout, kind, phrase):
    with pytest.raises(MediaError) as info:
        load_clip(media_root, media_id, SMALL, layout)
    message = str(info.value)
    assert media_id in message and phrase in message
    assert error_kind(info.value) == kind
    assert "Traceback" not in message


def test_decoder_output_stays_out_of_stderr(media_root, capfd):
    """decord logs "ERROR opening: ..." to file descriptor 2 itself; only our message may be seen."""
    capfd.readouterr()
    messages = {}
    for media_id in ("garbage", "truncated"):
        with pytest.raises(MediaError) as info:
            load_clip(media_root, media_id, SMALL)
        messages[media_id] = str(info.value)
    assert "cannot decode the video" in messages["garbage"] and "truncated" in messages["truncated"]
    # decord's own line is kept, inside our message
    assert "decord: ERROR opening: the file, Invalid data found when processing input" in messages["garbage"]
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    clip = load_clip(media_root, "good", SMALL)  # stderr is restored after a good clip too
    assert clip.frames.shape[0] == 10
    import os

    os.write(2, b"still connected\n")
    assert capfd.readouterr().err == "still connected\n"


def test_short_clip_can_be_padded_with_a_warning(media_root, caplog):
    spec = MediaSpec(image_size=32, audio_rate=16000, pad_short=True)
    with caplog.at_level("WARNING", logger="avfewshot"):
        clip = load_clip(media_root, "short", spec)
    assert any("short.mp4" in note and "padded" in note for note in clip.notes)
    assert "3.00 s long" in caplog.text
    assert clip.frame_indices[3:] == (23,) * 7  # the last frame repeated
    assert np.abs(clip.audio[4:]).max() == 0.0
    assert abs(dominant_hz(clip.audio[2], 16000) - DOG.tone_hz) <= 1


def test_media_spec_validates_and_normalisation_statistics():
    with pytest.raises(UserError, match="image_norm"):
        MediaSpec(image_norm="imagenet21k")
    with pytest.raises(UserError, match="frame_position"):
        MediaSpec(frame_position=1.0)
    frames = np.full((2, 4, 4, 3), 255, np.uint8)
    for norm, (mean, std) in NORM_STATS.items():
        x = normalise_frames(frames, norm)
        assert tuple(x.shape) == (2, 3, 4, 4)
        np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (1 - np.array(mean)) / np.array(std), rtol=1e-5)
    assert not np.allclose(normalise_frames(frames, "clip").numpy(), normalise_frames(frames, "imagenet").numpy())
