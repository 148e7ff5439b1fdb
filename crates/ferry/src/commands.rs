//! One module per subcommand; each takes the validated config and returns an exit code.

pub mod check;
pub mod demo;
pub mod peek;
pub mod serve;
pub mod setup;
pub mod slots;
pub mod status;
pub mod sync;
pub mod verify;
