//! Kconfig fragments and the survivor check: every option a fragment asks for must be
//! what `olddefconfig` left in `.config`, or the build stops naming it. Pure.

use std::collections::BTreeMap;

/// `CONFIG_X=value`, or `# CONFIG_X is not set` as `n`.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(sym) = rest.strip_suffix(" is not set") {
                out.insert(format!("CONFIG_{sym}"), "n".to_string());
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// The requested options that did not survive, as `CONFIG_X: asked y, got n`.
pub fn missing(requested: &BTreeMap<String, String>, config: &str) -> Vec<String> {
    let got = parse(config);
    requested
        .iter()
        .filter_map(|(k, want)| {
            let have = got.get(k).map(String::as_str).unwrap_or("n");
            (have != want).then(|| format!("{k}: asked {want}, got {have}"))
        })
        .collect()
}

/// Which preemption model a .config chose: `PREEMPT_RT` when set, else the
/// `CONFIG_PREEMPT*` choice that is `y`.
pub fn preemption_model(config: &str) -> Option<String> {
    const MODELS: [&str; 5] = ["PREEMPT_RT", "PREEMPT_NONE", "PREEMPT_VOLUNTARY", "PREEMPT", "PREEMPT_LAZY"];
    let set = parse(config);
    MODELS
        .iter()
        .find(|m| set.get(&format!("CONFIG_{m}")).map(String::as_str) == Some("y"))
        .map(|m| m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivors_and_casualties() {
        let frag = parse(
            "# comment\nCONFIG_SMP=y\n# CONFIG_SLUB_TINY is not set\nCONFIG_NR_CPUS=8\nCONFIG_GONE=y\n",
        );
        let config = "CONFIG_SMP=y\nCONFIG_NR_CPUS=64\n# CONFIG_GONE is not set\n";
        assert_eq!(
            missing(&frag, config),
            vec!["CONFIG_GONE: asked y, got n", "CONFIG_NR_CPUS: asked 8, got 64"]
        );
        assert!(missing(&parse("CONFIG_SMP=y\n# CONFIG_X is not set\n"), "CONFIG_SMP=y\n").is_empty());
    }

    #[test]
    fn preemption_models() {
        assert_eq!(
            preemption_model("CONFIG_PREEMPT_BUILD=y\nCONFIG_PREEMPT=y\n# CONFIG_PREEMPT_NONE is not set\n")
                .as_deref(),
            Some("PREEMPT")
        );
        assert_eq!(
            preemption_model("CONFIG_PREEMPT_LAZY=y\nCONFIG_PREEMPT_RT=y\n").as_deref(),
            Some("PREEMPT_RT")
        );
        assert_eq!(preemption_model("CONFIG_SMP=y\n"), None);
    }
}
