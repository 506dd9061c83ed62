//! The Elastic backend.

use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub struct Elastic;

impl Backend for Elastic {
    fn target(&self) -> Target {
        Target::Elastic
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        Err(BackendError(format!(
            "the elastic backend is not written yet (rule {})",
            rule.name
        )))
    }
}
