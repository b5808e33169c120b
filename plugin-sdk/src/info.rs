//! What a plugin says of itself: [`PluginInfo`], with its actions and their
//! parameters ([`ActionInfo`], [`ParamInfo`]) for forms and `kiln style describe`.

use std::fmt::Display;
use std::ops::RangeInclusive;

use serde_json::{Value, json};

/// A plugin's self-description.
///
/// ```
/// use kiln_plugin_sdk::{ActionInfo, ParamInfo, PluginInfo};
///
/// let info = PluginInfo::new("upper", "1.0.0", "Upper-cases text")
///     .reads(&["txt"])
///     .writes(&["txt"])
///     .variables(&["part"])
///     .actions(vec![
///         ActionInfo::new("lines", "One output per n lines")
///             .param(ParamInfo::int("n", "Lines per output").range(1..=10_000).default(100)),
///         ActionInfo::new("case", "Which case")
///             .param(ParamInfo::choice("to", "The case", &["upper", "lower"]).default("upper")),
///     ]);
/// let json: kiln_plugin_sdk::Json = kiln_plugin_sdk::serde_json::from_str(&info.actions_json()).unwrap();
/// assert_eq!(json[0]["params"][0]["range"], "1..=10000");
/// assert_eq!(json[1]["params"][0]["choices"][1], "lower");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    /// Output variables the plugin sets with [`OutputOptions::variable`](crate::OutputOptions::variable).
    pub variables: Vec<String>,
    /// The actions and their parameters.
    pub actions: Vec<ActionInfo>,
}

impl PluginInfo {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo { name: name.into(), version: version.into(), description: description.into(), ..Default::default() }
    }
    /// Formats read (extensions or media types); none means any.
    pub fn reads(mut self, formats: &[&str]) -> Self {
        self.reads = formats.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Formats written.
    pub fn writes(mut self, formats: &[&str]) -> Self {
        self.writes = formats.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Output variables the plugin may set when it opens an output (e.g.
    /// `page`): an output template may use `{page}` only if it is declared here.
    /// Lowercase letters, digits and `_`, starting with a letter.
    pub fn variables(mut self, names: &[&str]) -> Self {
        self.variables = names.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Describe the actions and their parameters.
    pub fn actions(mut self, actions: Vec<ActionInfo>) -> Self {
        self.actions = actions;
        self
    }
    /// The actions as the contract carries them: a JSON array, or the empty
    /// string for none.
    pub fn actions_json(&self) -> String {
        if self.actions.is_empty() {
            return String::new();
        }
        Value::Array(self.actions.iter().map(ActionInfo::to_json).collect()).to_string()
    }
}

/// One action of a style, e.g. `resize` of `image/resize,w_256`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    pub params: Vec<ParamInfo>,
}

impl ActionInfo {
    pub fn new(name: &str, description: &str) -> Self {
        ActionInfo { name: name.into(), description: description.into(), params: Vec::new() }
    }
    /// Add a parameter.
    pub fn param(mut self, param: ParamInfo) -> Self {
        self.params.push(param);
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "params": self.params.iter().map(ParamInfo::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The kind of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamKind {
    Int,
    Float,
    Bool,
    #[default]
    String,
    /// One of [`ParamInfo::choices`].
    Enum,
}

impl ParamKind {
    /// As the contract names it: `int`, `float`, `bool`, `string`, `enum`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Int => "int",
            ParamKind::Float => "float",
            ParamKind::Bool => "bool",
            ParamKind::String => "string",
            ParamKind::Enum => "enum",
        }
    }
}

/// One parameter of an action, e.g. `w` of `resize`: `name` is the key as
/// written in a style, before the `_`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub description: String,
    /// The default, as written in a style.
    pub default: Option<String>,
    /// The inclusive bounds of a number, e.g. `1..=16384`.
    pub range: Option<String>,
    /// The values of an `enum`.
    pub choices: Vec<String>,
}

impl ParamInfo {
    pub fn new(name: &str, kind: ParamKind, description: &str) -> Self {
        ParamInfo { name: name.into(), kind, description: description.into(), ..Default::default() }
    }
    pub fn int(name: &str, description: &str) -> Self {
        Self::new(name, ParamKind::Int, description)
    }
    pub fn float(name: &str, description: &str) -> Self {
        Self::new(name, ParamKind::Float, description)
    }
    pub fn bool(name: &str, description: &str) -> Self {
        Self::new(name, ParamKind::Bool, description)
    }
    pub fn string(name: &str, description: &str) -> Self {
        Self::new(name, ParamKind::String, description)
    }
    /// An `enum`: one of `choices`.
    pub fn choice(name: &str, description: &str, choices: &[&str]) -> Self {
        ParamInfo {
            choices: choices.iter().map(|c| c.to_string()).collect(),
            ..Self::new(name, ParamKind::Enum, description)
        }
    }
    /// The value used when the parameter is not given, as written in a style.
    pub fn default(mut self, value: impl Display) -> Self {
        self.default = Some(value.to_string());
        self
    }
    /// The inclusive bounds of a number.
    pub fn range<T: Display>(mut self, range: RangeInclusive<T>) -> Self {
        self.range = Some(format!("{}..={}", range.start(), range.end()));
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind.as_str(),
            "description": self.description,
            "default": self.default,
            "range": self.range,
            "choices": self.choices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialise_to_the_documented_json() {
        let info = PluginInfo::new("p", "1", "d").actions(vec![
            ActionInfo::new("resize", "Resize")
                .param(ParamInfo::int("w", "Width").range(1..=16384).default(256))
                .param(ParamInfo::choice("m", "Mode", &["lfit", "fill"])),
            ActionInfo::new("info", "Describe"),
        ]);
        let v: Value = serde_json::from_str(&info.actions_json()).unwrap();
        assert_eq!(
            v,
            json!([
                {"name": "resize", "description": "Resize", "params": [
                    {"name": "w", "kind": "int", "description": "Width", "default": "256", "range": "1..=16384", "choices": []},
                    {"name": "m", "kind": "enum", "description": "Mode", "default": null, "range": null, "choices": ["lfit", "fill"]},
                ]},
                {"name": "info", "description": "Describe", "params": []},
            ])
        );
        assert_eq!(PluginInfo::new("p", "1", "d").actions_json(), "");
    }
}
