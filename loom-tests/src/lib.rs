//! Loom tests of tidemark's concurrent commit path live in `tests/`; they
//! compile only under `--cfg loom`. See README.md in this directory.
