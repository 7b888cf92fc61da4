//! Guest programs.
