//! Dockerfile parser: text in, typed instructions out. No I/O, no knowledge of images.
