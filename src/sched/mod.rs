//! Scheduling: the CPU stage pool that runs every session's stages (actors connected by
//! bounded lock-free queues) and admission control.

pub mod admission;
pub mod placement;
pub mod pool;

pub use admission::{Admission, Busy, Permit};
pub use placement::{DeviceLease, Placement};
pub use pool::{Actor, Pool, PoolHandle, Step, Task};
