//! The Sigma backend.

use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub struct Sigma;

impl Backend for Sigma {
    fn target(&self) -> Target {
        Target::Sigma
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        Err(BackendError(format!(
            "the sigma backend is not written yet (rule {})",
            rule.name
        )))
    }
}
