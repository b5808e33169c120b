//! Saved styles: `owner/name` → JSON [`StyleRecord`] in `styles_v2`, the admin's
//! (shared with every tenant) under the empty owner.
//!
//! A name means one style to everyone who can see it: a tenant cannot save a
//! style under a shared style's name, nor the admin share a name a tenant
//! already uses. Otherwise deleting a tenant's own style would bring another
//! one into view under the same name, and a job naming it would quietly run
//! something else. (Stores written before this rule may still hold such a
//! pair; lookups take the caller's own first, so those keep working.)

use redb::ReadableTable;

use super::{STYLES, Store, encode, get_json, list_json, owned_key, remove_key};
use crate::model::StyleRecord;

/// Who already holds a style name that a new style would shadow or be shadowed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StyleNameTaken {
    /// A shared (admin) style has the name, so a tenant cannot take it.
    Shared,
    /// These tenants (the first few, in name order) have own styles of the name,
    /// so the admin cannot share it.
    Tenants(Vec<String>),
}

/// How many tenant names a [`StyleNameTaken::Tenants`] lists at most.
const TENANTS_SHOWN: usize = 5;

impl Store {
    /// Save `style` (a new one, or a new version of the owner's own) unless
    /// another owner's style holds its name; checked in the transaction that writes.
    pub fn save_style(&self, style: &StyleRecord) -> super::Result<Result<(), StyleNameTaken>> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(STYLES)?;
            let taken = match style.owner {
                Some(_) => table.get(owned_key(None, &style.name).as_str())?.map(|_| StyleNameTaken::Shared),
                None => {
                    let mut tenants = Vec::new();
                    let suffix = format!("/{}", style.name);
                    for entry in table.iter()? {
                        let (key, _) = entry?;
                        let key = key.value();
                        if let Some(owner) = key.strip_suffix(&suffix)
                            && !owner.is_empty()
                            && !owner.contains('/')
                        {
                            tenants.push(owner.to_string());
                            if tenants.len() == TENANTS_SHOWN {
                                break;
                            }
                        }
                    }
                    (!tenants.is_empty()).then_some(StyleNameTaken::Tenants(tenants))
                }
            };
            if let Some(taken) = taken {
                return Ok(Err(taken));
            }
            table.insert(owned_key(style.owner.as_deref(), &style.name).as_str(), encode(style).as_slice())?;
        }
        self.commit(txn)?;
        Ok(Ok(()))
    }

    /// Save `style` whatever other owners hold: for the shared style each
    /// plugin installed with the daemon gets at start.
    pub fn put_style(&self, style: &StyleRecord) -> super::Result<()> {
        super::put_json(self, STYLES, &owned_key(style.owner.as_deref(), &style.name), style)
    }

    pub fn get_style(&self, owner: Option<&str>, name: &str) -> super::Result<Option<StyleRecord>> {
        get_json(self, STYLES, "styles", &owned_key(owner, name))
    }

    /// Every style, or only one owner's.
    pub fn list_styles(&self, owner: Option<Option<&str>>) -> super::Result<Vec<StyleRecord>> {
        list_json(self, STYLES, "styles", owner)
    }

    pub fn delete_style(&self, owner: Option<&str>, name: &str) -> super::Result<bool> {
        remove_key(self, STYLES, &owned_key(owner, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(owner: Option<&str>, name: &str) -> StyleRecord {
        StyleRecord {
            name: name.into(),
            owner: owner.map(Into::into),
            plugin: "image".into(),
            params: "resize,w_8".into(),
            created_at: crate::model::now(),
        }
    }

    #[test]
    fn a_style_name_is_never_both_shared_and_a_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kiln.redb")).unwrap();
        store.save_style(&style(None, "thumb")).unwrap().unwrap();
        assert_eq!(store.save_style(&style(Some("a"), "thumb")).unwrap(), Err(StyleNameTaken::Shared));
        assert!(store.get_style(Some("a"), "thumb").unwrap().is_none(), "nothing is written when refused");

        store.save_style(&style(Some("a"), "small")).unwrap().unwrap();
        store.save_style(&style(Some("b"), "small")).unwrap().unwrap();
        store.save_style(&style(Some("b"), "small")).unwrap().unwrap(); // a new version of one's own
        assert_eq!(
            store.save_style(&style(None, "small")).unwrap(),
            Err(StyleNameTaken::Tenants(vec!["a".into(), "b".into()]))
        );
        // A longer name ending in the same letters is another name.
        store.save_style(&style(None, "all")).unwrap().unwrap();
        store.save_style(&style(None, "thumb")).unwrap().unwrap(); // the admin's own, again

        assert!(store.delete_style(Some("a"), "small").unwrap());
        assert!(store.delete_style(Some("b"), "small").unwrap());
        store.save_style(&style(None, "small")).unwrap().unwrap();
    }
}
