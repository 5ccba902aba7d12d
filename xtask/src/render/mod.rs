//! Everything the tool writes for people: the reply to a series, the regression report
//! that starts a thread, and the HTML page, all from a [`crate::report::Report`]. The
//! templates in `templates/` are loaded once, with strict undefined variables (a
//! misspelled name is an error, not an empty string); the page is HTML-escaped by
//! name, the mails are plain text. Pure apart from [`Templates::load`].

pub mod header;
pub mod html;
pub mod prose;
pub mod regression;
pub mod reply;
pub mod steps;
pub mod tables;

pub use header::{rfc2822, Envelope};

use anyhow::{Context, Result};
use std::path::Path;

/// The reply to a series.
pub const REPLY: &str = "reply.eml.j2";
/// `compare`'s regression report.
pub const REGRESSION: &str = "regression.eml.j2";
/// `report.html`.
pub const PAGE: &str = "report.html.j2";
/// Every template the tool has; each is rendered over every report fixture in the tests.
pub const ALL: [&str; 3] = [REPLY, REGRESSION, PAGE];

/// The templates, parsed once.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// `templates/` of the project.
    pub fn load() -> Result<Templates> {
        Templates::load_from(&crate::reftree::project_root().join("templates"))
    }

    pub fn load_from(dir: &Path) -> Result<Templates> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Everything from mail and logs is escaped on the page; the mails are text.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for name in ALL {
            let path = dir.join(name);
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            env.add_template_owned(name, text)
                .with_context(|| format!("{} does not parse", path.display()))?;
        }
        Ok(Templates { env })
    }

    /// Renders template `name` (one of [`ALL`]).
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String> {
        let t = self.env.get_template(name)?;
        t.render(ctx).with_context(|| format!("templates/{name} does not render"))
    }
}
