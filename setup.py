"""Build script for what setup.cfg cannot say: packages whose files live outside ``avfewshot/``.

The checkout keeps the prompt templates, class-name files and demo recipes in the top-level
``prompts/`` and ``runners/demo/`` folders; the wheel ships them inside the package, as
``avfewshot/_resources/prompts/`` and ``avfewshot/_resources/demo_recipes/``, where
``avfewshot.paths`` finds them from any working directory. Everything else is in setup.cfg.
"""
from setuptools import find_packages, setup

RESOURCE_DIRS = {
    "avfewshot._resources.prompts": "prompts",
    "avfewshot._resources.demo_recipes": "runners/demo",
}
RESOURCE_FILES = {
    "avfewshot._resources.prompts": ["templates.yaml", "classnames/*.txt"],
    "avfewshot._resources.demo_recipes": ["*.yaml"],
}

setup(
    packages=find_packages(include=["avfewshot", "avfewshot.*"]) + sorted(RESOURCE_DIRS),
    package_dir=RESOURCE_DIRS,
    package_data={"avfewshot": ["encoders/model_configs/*.json", "encoders/tiny_corpus.txt"], **RESOURCE_FILES},
)
