//! What a plugin says of itself through `info()`: kept with its record,
//! shown by the API, and used to check templates (output variables) and to
//! build forms (actions and their parameters, 0.2.0).

use serde::{Deserialize, Serialize};

use super::bindings::Contract;
use super::text::{self, TextLimits, bounded};

/// A plugin's self-description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    /// The contract version the component was built against.
    #[serde(default = "v1")]
    pub contract: Contract,
    /// Output variables the plugin may set (0.2.0), usable in output templates.
    #[serde(default)]
    pub variables: Vec<String>,
    /// The plugin's actions and their parameters (0.2.0; may be empty).
    #[serde(default)]
    pub actions: Vec<ActionInfo>,
}

fn v1() -> Contract {
    Contract::V1
}

/// One action of a plugin, e.g. `resize` of `image/resize,w_256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: Vec<ParamInfo>,
}

/// One parameter of an action, e.g. `w` of `resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParamInfo {
    /// As written in a style, before the `_`.
    pub name: String,
    /// `int`, `float`, `bool`, `string` or `enum`.
    #[serde(default = "string_kind")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub default: Option<String>,
    /// For numbers: the inclusive bounds, e.g. `1..=16384`.
    #[serde(default)]
    pub range: Option<String>,
    /// For `enum`: the values accepted.
    #[serde(default)]
    pub choices: Vec<String>,
}

fn string_kind() -> String {
    "string".into()
}

/// Output variables one plugin may declare, and the longest name.
pub const MAX_DECLARED_VARIABLES: usize = 16;
/// Actions, parameters per action and choices per parameter kept of a description.
const MAX_ACTIONS: usize = 64;
const MAX_PARAMS: usize = 64;
const MAX_CHOICES: usize = 64;
/// Names (actions, parameters, kinds, choices, variables) are kept to this many bytes.
const MAX_NAME: usize = 32;

/// A variable name a template can hold: lowercase letters, digits and `_`, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "output variable `{}`: 1 to {MAX_NAME} lowercase letters, digits or `_`, starting with a letter",
            bounded(name, MAX_NAME)
        ))
    }
}

impl PluginInfo {
    /// This info with every field within the caps, as a fresh `info()` call gives it.
    pub(super) fn bounded(self, caps: &TextLimits) -> Self {
        let formats = |list: Vec<String>| -> Vec<String> {
            let kept = list.iter().map(|f| bounded(f, text::MAX_FORMAT_NAME));
            text::bounded_list(list.len(), kept, caps.max_info_formats)
        };
        let field = |s: &str| bounded(s, caps.max_info_field);
        PluginInfo {
            name: field(&self.name),
            version: field(&self.version),
            description: field(&self.description),
            reads: formats(self.reads),
            writes: formats(self.writes),
            contract: self.contract,
            variables: self.variables.into_iter().take(MAX_DECLARED_VARIABLES).collect(),
            actions: bounded_actions(self.actions, caps),
        }
    }

    pub fn default_unknown() -> Self {
        PluginInfo {
            name: "(loading)".into(),
            version: String::new(),
            description: String::new(),
            reads: vec![],
            writes: vec![],
            contract: Contract::V1,
            variables: vec![],
            actions: vec![],
        }
    }
}

/// Actions within their caps: counts, and each text cut.
pub(super) fn bounded_actions(actions: Vec<ActionInfo>, caps: &TextLimits) -> Vec<ActionInfo> {
    let field = |s: &str| bounded(s, caps.max_info_field);
    let name = |s: &str| bounded(s, MAX_NAME);
    actions
        .into_iter()
        .take(MAX_ACTIONS)
        .map(|a| ActionInfo {
            name: name(&a.name),
            description: field(&a.description),
            params: a
                .params
                .into_iter()
                .take(MAX_PARAMS)
                .map(|p| ParamInfo {
                    name: name(&p.name),
                    kind: name(&p.kind),
                    description: field(&p.description),
                    default: p.default.map(|d| field(&d)),
                    range: p.range.map(|r| name(&r)),
                    choices: p.choices.iter().take(MAX_CHOICES).map(|c| name(c)).collect(),
                })
                .collect(),
        })
        .collect()
}

/// 0.2.0's `actions`: a JSON array, or empty for none. A plugin that
/// declares them badly is refused at load, with the reason.
pub(super) fn parse_actions(json: &str) -> Result<Vec<ActionInfo>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| format!("info().actions is not a JSON array of actions: {e}"))
}

/// 0.2.0's `variables`, each a name a template can hold and none of the
/// host's `reserved` names (its template's own variables).
pub(super) fn check_variables(names: &[String], reserved: &[String]) -> Result<(), String> {
    if names.len() > MAX_DECLARED_VARIABLES {
        return Err(format!("info() declares {} output variables: at most {MAX_DECLARED_VARIABLES}", names.len()));
    }
    for name in names {
        check_variable_name(name)?;
        if reserved.contains(name) {
            return Err(format!("output variable `{name}` is one of the template's own variables"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_from_json_and_bad_ones_say_why() {
        let a = parse_actions(r#"[{"name":"tail","description":"the last lines","params":[{"name":"n","kind":"int","default":"10","range":"1..=10000"}]}]"#).unwrap();
        assert_eq!(a[0].params[0].range.as_deref(), Some("1..=10000"));
        assert_eq!(parse_actions("").unwrap(), vec![]);
        assert!(parse_actions("{").unwrap_err().contains("info().actions"));
    }

    #[test]
    fn variables_are_template_names_not_the_templates_own() {
        let reserved = ["key".to_string(), "tags".to_string()];
        assert!(check_variables(&["page".into(), "sheet_name".into()], &reserved).is_ok());
        assert!(check_variables(&["Page".into()], &reserved).unwrap_err().contains("lowercase"));
        assert!(check_variables(&["key".into()], &reserved).unwrap_err().contains("template's own"));
        assert!(check_variables(&["key".into()], &[]).is_ok(), "reserved by the host, not the runtime");
    }
}
