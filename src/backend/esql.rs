//! stub
use super::{Backend, BackendError, Rendered, Target};
use crate::ir::Rule;
pub const TEMPLATES: &[(&str, &str)] = &[];
pub struct Esql;
impl Backend for Esql {
    fn target(&self) -> Target {
        Target::Esql
    }
    fn render(&self, _rule: &Rule) -> Result<Rendered, BackendError> {
        Ok(Rendered::default())
    }
}
