//! The pull-request workflow around the compiler: drift check of generated
//! files, the version lock, review diffs between two rule trees or git
//! revisions, the canonical formatter and the rule template.

pub mod diff;
pub mod drift;
pub mod fmt;
pub mod git;
pub mod lock;
pub mod new;
