//! The pagelab machine.
