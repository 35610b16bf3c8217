//! Serde helpers shared by the response models of several modules. Their own module so that
//! `error` and `types` need not import each other (`types` uses `error`, not the reverse).

use serde::{Deserialize, Deserializer};

/// Deserializes `null` (or a missing key, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
