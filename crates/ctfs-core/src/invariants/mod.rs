//! Built-in invariants.

pub mod total_supply;

pub use total_supply::TotalSupply;
