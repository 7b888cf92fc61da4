//! (family stub: to be filled)

use super::exec::Handler;
use iced_x86::Instruction;

pub fn select(_ins: &Instruction) -> Option<Handler> {
    None
}
