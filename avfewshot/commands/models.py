"""``avfewshot models list``: known architectures, checkpoints and tokenizers, where each is expected
on disk and whether it is there. Imports nothing heavy (no torch)."""
from __future__ import annotations


def add_commands(subparsers) -> None:
    models = subparsers.add_parser("models", help="encoder architectures and checkpoints")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    listing = sub.add_parser("list", help="architectures, checkpoints and tokenizers, and whether they are on disk")
    listing.set_defaults(func=list_models)
    build = sub.add_parser("build-demo", help="pretrain the demo towers on the synthetic concept world now "
                                              "(otherwise built on first use)")
    build.set_defaults(func=build_demo)
    models.set_defaults(func=lambda args: (models.print_help(), 2)[1])


def list_models(args) -> int:
    from .. import paths
    from ..encoders import checkpoints as ckpt
    from ..encoders import specs
    from ..encoders.tokenizers import expected_tokenizer_location

    cat = specs.catalogue()
    print(f"weights folder: {paths.weights_dir()}  (set $AVFEWSHOT_WEIGHTS to change it)\n")
    print("CLIP architectures (model.clip_arch):")
    for name in cat.clip_archs.names():
        print(f"  {name:22s} {cat.clip_archs.get(name).description}")
    print("\nCLAP architectures (model.clap_arch):")
    for name in cat.clap_archs.names():
        arch = cat.clap_archs.get(name)
        print(f"  {name:22s} {arch.description} [native front-end: {arch.frontend}]")
    print("\naudio front-ends (model.audio_frontend; 'native' = the architecture's own):")
    for name in cat.frontends.names():
        print(f"  {name:22s} {cat.frontends.get(name).describe()}")

    print("\nCLIP weights (model.clip_weights):")
    for tag in specs.clip_tags():
        for arch, entry in sorted(cat.clip_checkpoints[tag].items()):
            found = next((p for p in ckpt.clip_candidates(arch, tag) if p.is_file()), None)
            where = found or ckpt.entry_folder(entry) / entry.files[0]
            state = "present" if found else ("built on first use" if entry.built else "MISSING")
            print(f"  {tag:10s} {arch + '(-quickgelu)':24s} {state:8s} {where}")
            if not found and not entry.built:
                print(f"  {'':10s} {'':24s} {'':8s} source: {entry.source}")
    print("\nCLAP weights (model.clap_weights):")
    for name in cat.clap_checkpoints.names():
        entry = cat.clap_checkpoints.get(name)
        path = ckpt.entry_folder(entry) / entry.file
        state = "present" if path.is_file() else ("built on first use" if entry.built else "MISSING")
        kind = "fused" if entry.fused else "unfused"
        print(f"  {name:28s} {kind:8s} {state:8s} {path}")
        if state == "MISSING":
            print(f"  {'':28s} {'':8s} {'':8s} source: {entry.source}")
    print("\nCLAP tokenizers (model.clap_tokenizer overrides the folder):")
    for name in cat.clap_archs.names():
        tok, folder = expected_tokenizer_location(cat.clap_archs.get(name).text)
        present = all((folder / f).is_file() for f in ("vocab.json", "merges.txt"))
        note = "present" if present else ("built on first use" if tok == "tiny-bpe" else "MISSING")
        print(f"  {name:22s} {tok:14s} {note:18s} {folder}")
    print("\n'demo' weights are the tiny towers pretrained on the synthetic concept world (the embedded demo's "
          "default),\nbuilt into the cache on first use; 'none' builds a randomly initialised tower (seeded).")
    return 0


def build_demo(args) -> int:
    import logging

    from ..encoders.demo_towers import ensure_demo_towers

    logging.getLogger("avfewshot").setLevel(logging.INFO)
    print(f"demo towers: {ensure_demo_towers()}")
    return 0
