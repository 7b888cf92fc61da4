//! Chooses the handler for a decoded instruction, once, at decode time. Each instruction
//! family offers `select`, which answers for the mnemonics it implements.

use super::exec::{Exec, Handler, Stop};
use iced_x86::Instruction;

/// The handler for `ins`, or [`unimplemented`] when no family implements it.
pub fn select(ins: &Instruction) -> Handler {
    super::alu::select(ins)
        .or_else(|| super::data::select(ins))
        .or_else(|| super::control::select(ins))
        .or_else(|| super::system::select(ins))
        .or_else(|| super::string::select(ins))
        .or_else(|| super::muldiv::select(ins))
        .or_else(|| super::bits::select(ins))
        .or_else(|| super::sse::select(ins))
        .or_else(|| super::x87::select(ins))
        .unwrap_or(unimplemented)
}

/// Reports a valid instruction pagelab does not implement (never a silent mis-execution).
pub fn unimplemented(_: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    Err(Stop::Unimplemented)
}
