//! What explains a clue beyond the pool's own records.

/// Records kept outside the clue pool that explain a clue, shown on its detail: the pump-out
/// visits registered for a grease trap (the rules keep them; the clue layer does not depend on
/// the rules, so they come in through this trait).
pub trait Explanations: Send + Sync {
    /// Fields to add to the clue's detail (`{"pumpouts": [...]}`); empty when nothing applies.
    fn explaining(&self, clue: &super::model::Clue) -> serde_json::Map<String, serde_json::Value>;
}
