//! Who is in a smart list right now: the saved filter applied to every contact of the
//! account. Shared by the REST API and the contacts page.

use textback_core::smart_list::{Candidate, Filter};
use textback_store::{ContactView, Store, StoreError};

/// Every contact of the account, newest first.
pub async fn all_contacts(store: &Store, account: i64) -> Result<Vec<ContactView>, StoreError> {
    const PAGE: i64 = 500;
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .contacts_page(account, None, None, before, PAGE)
            .await?;
        let done = (page.len() as i64) < PAGE;
        before = page.last().map(|c| c.id);
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

pub async fn members(
    store: &Store,
    account: i64,
    filter: &Filter,
    now_ms: i64,
) -> Result<Vec<ContactView>, StoreError> {
    let last_calls = store.last_calls(account).await?;
    Ok(all_contacts(store, account)
        .await?
        .into_iter()
        .filter(|c| {
            filter.matches(
                &Candidate {
                    tags: &c.tags,
                    replied: c.last_replied_at_ms.is_some(),
                    opted_out: c.opted_out,
                    last_call_at_ms: last_calls.get(&c.id).copied(),
                },
                now_ms,
            )
        })
        .collect())
}
