//! The style grammar: `action,k_v,k_v/action,k_v`.
//!
//! A style such as `image/resize,w_200/format,webp` names the plugin in its first
//! segment; the plugin receives the rest (`resize,w_200/format,webp`) as its
//! parameters and parses it with [`Style::parse`]. Actions are separated by `/`,
//! arguments by `,`. An argument is `key_value` or a bare value (`webp`).

use std::fmt;
use std::str::FromStr;

/// Why a style string or one of its values was refused. Every variant names
/// the action, and the key where there is one, so the user can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StyleError {
    #[error("empty action at position {position} (two `/` in a row, or a leading or trailing `/`)")]
    EmptyAction { position: usize },
    #[error("action `{action}`: empty argument (two `,` in a row or a trailing `,`)")]
    EmptyArgument { action: String },
    #[error("unknown action `{action}`; expected one of: {expected}")]
    UnknownAction { action: String, expected: String },
    #[error("action `{action}`: unknown parameter `{key}`; expected one of: {expected}")]
    UnknownKey { action: String, key: String, expected: String },
    #[error("action `{action}`: parameter `{key}` is required")]
    MissingKey { action: String, key: String },
    #[error("action `{action}`: parameter `{key}` is given twice")]
    DuplicateKey { action: String, key: String },
    #[error("action `{action}`: parameter `{key}` has invalid value `{value}`: {reason}")]
    InvalidValue { action: String, key: String, value: String, reason: String },
    #[error("action `{action}`: unexpected value `{value}`")]
    UnexpectedValue { action: String, value: String },
}

/// One argument of an action: `w_200` is `key = Some("w"), value = "200"`;
/// `webp` is `key = None, value = "webp"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub key: Option<String>,
    pub value: String,
}

/// One action of a style, with its arguments in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub args: Vec<Arg>,
}

/// A parsed style: its actions in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Style {
    pub actions: Vec<Action>,
}

impl Style {
    /// Parse the parameters of a style. An empty string is a style with no actions.
    pub fn parse(params: &str) -> Result<Style, StyleError> {
        let params = params.trim();
        if params.is_empty() {
            return Ok(Style::default());
        }
        let mut actions = Vec::new();
        for (position, segment) in params.split('/').enumerate() {
            let mut parts = segment.split(',');
            let name = parts.next().unwrap_or_default().trim();
            if name.is_empty() {
                return Err(StyleError::EmptyAction { position: position + 1 });
            }
            let mut args = Vec::new();
            for part in parts {
                let part = part.trim();
                if part.is_empty() {
                    return Err(StyleError::EmptyArgument { action: name.to_string() });
                }
                args.push(match part.split_once('_') {
                    Some((key, value)) if !key.is_empty() => {
                        if args.iter().any(|a: &Arg| a.key.as_deref() == Some(key)) {
                            return Err(StyleError::DuplicateKey { action: name.to_string(), key: key.to_string() });
                        }
                        Arg { key: Some(key.to_string()), value: value.to_string() }
                    }
                    _ => Arg { key: None, value: part.to_string() },
                });
            }
            actions.push(Action { name: name.to_string(), args });
        }
        Ok(Style { actions })
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(&action.name)?;
            for arg in &action.args {
                match &arg.key {
                    Some(k) => write!(f, ",{k}_{}", arg.value)?,
                    None => write!(f, ",{}", arg.value)?,
                }
            }
        }
        Ok(())
    }
}

impl Action {
    /// The raw value of `key`, if given.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|a| a.key.as_deref() == Some(key)).map(|a| a.value.as_str())
    }

    /// The bare values (arguments without a `key_`), in order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.args.iter().filter(|a| a.key.is_none()).map(|a| a.value.as_str())
    }

    /// Parse the value of `key` as `T`, naming the action and key on failure.
    pub fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>, StyleError>
    where
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            None => Ok(None),
            Some(value) => value.parse::<T>().map(Some).map_err(|e| self.invalid(key, value, e)),
        }
    }

    /// Like [`Action::get`], and also checks that the value lies in `range`.
    pub fn get_in<T>(&self, key: &str, range: std::ops::RangeInclusive<T>) -> Result<Option<T>, StyleError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        match self.get::<T>(key)? {
            Some(v) if !range.contains(&v) => Err(self.invalid(
                key,
                self.raw(key).unwrap_or_default(),
                format!("must be between {} and {}", range.start(), range.end()),
            )),
            v => Ok(v),
        }
    }

    /// Like [`Action::get`], but the key must be present.
    pub fn require<T: FromStr>(&self, key: &str) -> Result<T, StyleError>
    where
        T::Err: fmt::Display,
    {
        self.get(key)?.ok_or_else(|| StyleError::MissingKey { action: self.name.clone(), key: key.to_string() })
    }

    /// Refuse any key not in `allowed`, and any bare value when `allow_values` is false.
    pub fn expect_keys(&self, allowed: &[&str], allow_values: bool) -> Result<(), StyleError> {
        for arg in &self.args {
            match &arg.key {
                Some(k) if !allowed.contains(&k.as_str()) => {
                    return Err(StyleError::UnknownKey {
                        action: self.name.clone(),
                        key: k.clone(),
                        expected: if allowed.is_empty() { "(none)".into() } else { allowed.join(", ") },
                    });
                }
                None if !allow_values => {
                    return Err(StyleError::UnexpectedValue { action: self.name.clone(), value: arg.value.clone() });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An [`StyleError::InvalidValue`] for `key` of this action.
    pub fn invalid(&self, key: &str, value: &str, reason: impl fmt::Display) -> StyleError {
        StyleError::InvalidValue {
            action: self.name.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// An [`StyleError::UnknownAction`] listing what the plugin accepts.
pub fn unknown_action(action: &str, expected: &[&str]) -> StyleError {
    StyleError::UnknownAction { action: action.to_string(), expected: expected.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_keys_and_bare_values() {
        let s = Style::parse("resize,w_200,h_100/format,webp").unwrap();
        assert_eq!(s.actions.len(), 2);
        assert_eq!(s.actions[0].name, "resize");
        assert_eq!(s.actions[0].get::<u32>("w").unwrap(), Some(200));
        assert_eq!(s.actions[0].get::<u32>("h").unwrap(), Some(100));
        assert_eq!(s.actions[1].values().collect::<Vec<_>>(), vec!["webp"]);
        assert_eq!(s.to_string(), "resize,w_200,h_100/format,webp");
    }

    #[test]
    fn empty_params_is_an_empty_style() {
        assert!(Style::parse("").unwrap().actions.is_empty());
    }

    #[test]
    fn value_may_contain_underscores() {
        let s = Style::parse("text,t_hello_world").unwrap();
        assert_eq!(s.actions[0].raw("t"), Some("hello_world"));
    }

    #[test]
    fn errors_name_the_action_and_key() {
        let s = Style::parse("resize,w_abc").unwrap();
        let err = s.actions[0].get::<u32>("w").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`resize`") && msg.contains("`w`") && msg.contains("abc"), "{msg}");

        let err = s.actions[0].expect_keys(&["h"], false).unwrap_err().to_string();
        assert!(err.contains("unknown parameter `w`") && err.contains("expected one of: h"), "{err}");

        let err = s.actions[0].require::<u32>("h").unwrap_err().to_string();
        assert!(err.contains("`h` is required"), "{err}");
    }

    #[test]
    fn range_checks_name_the_bounds() {
        let s = Style::parse("quality,q_150").unwrap();
        let err = s.actions[0].get_in::<u8>("q", 1..=100).unwrap_err().to_string();
        assert!(err.contains("between 1 and 100"), "{err}");
    }

    #[test]
    fn malformed_styles_are_refused() {
        assert_eq!(Style::parse("a//b"), Err(StyleError::EmptyAction { position: 2 }));
        assert_eq!(Style::parse("/a"), Err(StyleError::EmptyAction { position: 1 }));
        assert!(matches!(Style::parse("a,,b"), Err(StyleError::EmptyArgument { .. })));
        assert!(matches!(Style::parse("a,w_1,w_2"), Err(StyleError::DuplicateKey { .. })));
    }
}
