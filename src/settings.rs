//! The settings table at its earlier path (tools and tests name `heavy_api::settings`): it is
//! declared once, in [`crate::config::table`].

pub use crate::config::table::*;
