//! Built-in invariants.

pub mod builtin;
pub mod total_supply;

pub use builtin::Builtin;
pub use total_supply::TotalSupply;
