//! Suites (`harness/suites/NAME.yaml`): which workloads, with which parameters and
//! in-boot repetitions. A list value expands into one run per element; the result is
//! the plain `run id=... key=value` text the guest harness reads. Pure apart from
//! reading the file.

use crate::reftree::project_root;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
pub struct SuiteFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How long one boot may take before it is killed and called a timeout.
    pub deadline_s: u64,
    pub runs: Vec<BTreeMap<String, serde_yaml::Value>>,
}

/// One expanded run: its stable id and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: String,
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub deadline_s: u64,
    pub runs: Vec<Run>,
}

/// Keys whose values name a run (in this order); the rest are tuning.
const ID_KEYS: [&str; 4] = ["kind", "folio", "size", "threads"];

fn scalar(v: &serde_yaml::Value) -> Result<String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => bail!("expected a scalar, got {other:?}"),
    })
}

fn safe(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A shipped suite by name (`quick`), or a suite file by path (`./mine.yaml`).
pub fn load(name: &str) -> Result<Suite> {
    if name.ends_with(".yaml") || name.contains('/') {
        let text = std::fs::read_to_string(name).with_context(|| format!("cannot read suite {name}"))?;
        return parse(&text).with_context(|| name.to_string());
    }
    let path = project_root().join("harness/suites").join(format!("{name}.yaml"));
    if !safe(name) {
        bail!("suite name `{name}` must be a plain file name");
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        let known: Vec<String> = std::fs::read_dir(project_root().join("harness/suites"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".yaml").map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        format!("no suite `{name}` (known: {})", known.join(", "))
    })?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

pub fn parse(text: &str) -> Result<Suite> {
    let file: SuiteFile = serde_yaml::from_str(text)?;
    let mut runs = Vec::new();
    for (i, entry) in file.runs.iter().enumerate() {
        // Cartesian product over list values, keys in order.
        let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        for (k, v) in entry {
            if !safe(k) {
                bail!("run {}: bad key `{k}`", i + 1);
            }
            let values: Vec<String> = match v {
                serde_yaml::Value::Sequence(seq) => seq.iter().map(scalar).collect::<Result<_>>()?,
                v => vec![scalar(v)?],
            };
            for x in &values {
                if !safe(x) {
                    bail!("run {}: value `{x}` of `{k}` has characters the harness does not take", i + 1);
                }
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |x| {
                        let mut c = c.clone();
                        c.insert(k.clone(), x.clone());
                        c
                    })
                })
                .collect();
        }
        for params in combos {
            let Some(w) = params.get("workload") else { bail!("run {} has no workload", i + 1) };
            let mut id = w.clone();
            for k in ID_KEYS {
                if let Some(v) = params.get(k) {
                    id.push('/');
                    if k == "threads" {
                        id.push_str("threads-");
                    }
                    id.push_str(v);
                }
            }
            if runs.iter().any(|r: &Run| r.id == id) {
                bail!("two runs are both `{id}`; make them differ in kind, folio, size or threads");
            }
            runs.push(Run { id, params });
        }
    }
    if runs.is_empty() {
        bail!("the suite has no runs");
    }
    Ok(Suite { name: file.name, description: file.description, deadline_s: file.deadline_s, runs })
}

/// The file the guest reads as /suite.txt.
pub fn to_text(s: &Suite) -> String {
    let mut out = format!("# name={}\n", s.name);
    for r in &s.runs {
        out.push_str(&format!("run id={}", r.id));
        for (k, v) in &r.params {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn lists_expand_and_ids_are_stable() {
        let s = parse(
            "name: t\ndeadline_s: 9\nruns:\n  - workload: toggle\n    kind: [anon, shared]\n    size: [4K, 40K]\n    reps: 3\n  - workload: toggle\n    threads: all\n    size: 4M\n",
        )
        .unwrap();
        expect![[r#"
            # name=t
            run id=toggle/anon/4K kind=anon reps=3 size=4K workload=toggle
            run id=toggle/anon/40K kind=anon reps=3 size=40K workload=toggle
            run id=toggle/shared/4K kind=shared reps=3 size=4K workload=toggle
            run id=toggle/shared/40K kind=shared reps=3 size=40K workload=toggle
            run id=toggle/4M/threads-all size=4M threads=all workload=toggle
        "#]]
        .assert_eq(&to_text(&s));
    }

    #[test]
    fn bad_suites_are_refused() {
        let e = parse("name: t\ndeadline_s: 1\nruns:\n  - workload: toggle\n    size: 4K\n  - workload: toggle\n    size: 4K\n");
        assert!(e.unwrap_err().to_string().contains("two runs are both `toggle/4K`"));
        let e = parse("name: t\ndeadline_s: 1\nruns:\n  - workload: toggle\n    size: \"4K reps=9\"\n");
        assert!(e.unwrap_err().to_string().contains("characters the harness does not take"));
        assert!(load("../etc/passwd").unwrap_err().to_string().contains("cannot read suite"));
        assert!(load("no such").unwrap_err().to_string().contains("must be a plain file name"));
    }

    #[test]
    fn shipped_suites_load() {
        for name in ["quick", "default", "full"] {
            let s = load(name).unwrap();
            assert_eq!(s.name, name);
            for w in
                ["toggle", "toggle_touch", "shared_cycle", "shared_steady", "single_protect", "mremap_move"]
            {
                assert!(s.runs.iter().any(|r| r.params["workload"] == w), "{name} lacks {w}");
            }
        }
        // Workload 6: large folios of both kinds in the default suite.
        let d = load("default").unwrap();
        assert!(d.runs.iter().any(|r| r.id == "toggle/anon/thp-pte/4M"));
        assert!(d.runs.iter().any(|r| r.id == "shared_cycle/shared/mthp-64k/8M"));
    }
}
