//! The Splunk backend.

use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub struct Splunk;

impl Backend for Splunk {
    fn target(&self) -> Target {
        Target::Splunk
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        Err(BackendError(format!(
            "the splunk backend is not written yet (rule {})",
            rule.name
        )))
    }
}
