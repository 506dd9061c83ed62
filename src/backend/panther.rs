//! The Panther backend.

use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub struct Panther;

impl Backend for Panther {
    fn target(&self) -> Target {
        Target::Panther
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        Err(BackendError(format!(
            "the panther backend is not written yet (rule {})",
            rule.name
        )))
    }
}
