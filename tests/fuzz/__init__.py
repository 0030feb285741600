"""Coverage-guided fuzzing of medtap's hostile-input surfaces (docs/security-fuzzing.md).

``targets`` holds the targets, ``invariants`` what they check, ``formats`` how bytes become
conversations, ``make_corpus`` the seed corpus from ``pcaps/``; ``python -m tests.fuzz``
runs them. Nothing is imported here: ``runner`` must import the code under test inside
atheris' instrumentation hook.
"""
