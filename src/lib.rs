//! detc, the detection compiler.
//!
//! Stages: [`syntax`] (text -> AST) -> [`check`] (AST -> [`ir`]) ->
//! [`eval`] (reference semantics) and [`backend`] (IR -> target files).

pub mod backend;
pub mod build;
pub mod check;
pub mod diag;
pub mod eval;
pub mod files;
pub mod fold;
pub mod ir;
pub mod load;
pub mod sources;
pub mod syntax;
pub mod target;
pub mod verify;
pub mod workflow;
