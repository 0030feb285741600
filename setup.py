"""Build of the optional C hot path (agent/_fastcore.c); everything else is in pyproject.toml.

The extension is optional: without a compiler (or Python headers) ``pip install -e .`` still
succeeds and medtap runs on its pure-Python path (agent/fastcore.py picks whichever exists).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agent._fastcore",
            sources=["agent/_fastcore.c"],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=True,
        )
    ]
)
