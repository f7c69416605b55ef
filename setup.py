"""Build script for what setup.cfg cannot say: packages whose files live outside ``avfewshot/``.

The checkout keeps the prompt templates, class-name files and demo recipes in the top-level
``prompts/`` and ``runners/demo/`` folders; the wheel ships them inside the package, as
``avfewshot/_resources/prompts/`` and ``avfewshot/_resources/demo_recipes/``, where
``avfewshot.paths`` finds them from any working directory. Everything else is in setup.cfg.
"""
from setuptools import find_namespace_packages, setup

RESOURCE_DIRS = {
    "avfewshot._resources.prompts": "prompts",
    "avfewshot._resources.prompts.classnames": "prompts/classnames",
    "avfewshot._resources.demo_recipes": "runners/demo",
}
RESOURCE_FILES = {
    "avfewshot._resources.prompts": ["templates.yaml"],
    "avfewshot._resources.prompts.classnames": ["*.txt"],
    "avfewshot._resources.demo_recipes": ["*.yaml"],
}
# namespace discovery: data-only folders (encoders/model_configs) are packages too, so they ship without warnings
PACKAGES = find_namespace_packages(include=["avfewshot", "avfewshot.*"], exclude=["*.__pycache__"])

setup(
    packages=PACKAGES + sorted(RESOURCE_DIRS),
    package_dir=RESOURCE_DIRS,
    package_data={"avfewshot": ["encoders/tiny_corpus.txt"], "avfewshot.encoders.model_configs": ["*.json"], **RESOURCE_FILES},
)
