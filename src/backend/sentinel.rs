//! stub
use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;
pub const TEMPLATES: &[(&str, &str)] = &[];
pub struct Sentinel;
impl Backend for Sentinel {
    fn target(&self) -> Target {
        Target::Sentinel
    }
    fn render(&self, _rule: &Rule) -> Result<Rendered, BackendError> {
        Ok(Rendered::default())
    }
}
