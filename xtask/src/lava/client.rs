//! The lab's REST API (v0.2) through curl, with the token of a user who may submit:
//! the token goes to curl on its stdin.

use super::{JobLog, JobState};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;

/// A lab's REST API, with the token of a user who may submit.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The lab's base URL, ending in `/`.
    pub url: String,
    token: String,
}

/// A lab's base URL, normalized: http(s), ending in `/`, nothing but the URL.
pub fn base_url(url: &str) -> Result<String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
    if !ok {
        bail!("--lava {url:?}: give the lab's http:// or https:// URL, e.g. http://lab.example.org:8000");
    }
    Ok(format!("{}/", url.trim_end_matches('/')))
}

impl Lab {
    pub fn new(url: &str, token: &str) -> Result<Lab> {
        let token = token.trim();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("the LAVA token is empty or not a token: it is one word of letters and digits (`lava-server manage tokens add --user U` prints one)");
        }
        Ok(Lab { url: base_url(url)?, token: token.to_string() })
    }

    pub fn job_url(&self, id: u64) -> String {
        format!("{}scheduler/job/{id}", self.url)
    }

    /// The answer's body and HTTP status for `path` of the API; an unreachable lab
    /// is an error saying so.
    fn call(&self, path: &str, extra: &[&str]) -> Result<(Vec<u8>, String)> {
        let url = format!("{}api/v0.2/{path}", self.url);
        let tmp = tempfile_in_cache()?;
        let config = format!("header = \"Authorization: Token {}\"\n", self.token);
        let got = crate::http::curl(extra, &url, tmp.path(), Some(&config))?;
        if got.unreachable() || got.exit != Some(0) {
            bail!(
                "cannot reach the LAVA lab at {} ({}); is it up? (`cargo xtask lab up` starts one here)",
                self.url,
                got.why()
            );
        }
        let body = std::fs::read(tmp.path()).unwrap_or_default();
        if got.status == "401" || got.status == "403" {
            let said = String::from_utf8_lossy(&body);
            bail!(
                "the LAVA lab at {} refused the token ({}: {}); give a valid one with --lava-token-file",
                self.url,
                got.status,
                said.trim()
            );
        }
        Ok((body, got.status))
    }

    /// Checks that the lab answers, the token is a user's, and the device type has
    /// devices that can run jobs; the user and those devices.
    pub fn check(&self, device_type: &str) -> Result<(String, Vec<String>)> {
        let user = self.check_user()?;
        let devices: Vec<String> = self
            .devices(device_type)?
            .iter()
            .filter(|d| d["health"].as_str() != Some("Retired"))
            .filter_map(|d| d["hostname"].as_str().map(String::from))
            .collect();
        if devices.is_empty() {
            bail!(
                "the LAVA lab at {} has no device of type {device_type:?}; give --lava-device-type",
                self.url
            );
        }
        Ok((user, devices))
    }

    /// The user the token belongs to.
    pub fn check_user(&self) -> Result<String> {
        let (body, status) = self.call("system/whoami/", &[])?;
        let who: Value = serde_json::from_slice(&body).unwrap_or_default();
        let user = who["user"].as_str().unwrap_or_default().to_string();
        if status != "200" || user.is_empty() {
            bail!("the LAVA lab at {} did not accept the token as a user's (HTTP {status}); give a valid one with --lava-token-file", self.url);
        }
        Ok(user)
    }

    fn devices(&self, device_type: &str) -> Result<Vec<Value>> {
        let (body, _) = self.call(&format!("devices/?device_type={device_type}&limit=1000"), &[])?;
        let list: Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(list["results"].as_array().cloned().unwrap_or_default())
    }

    /// The devices of a type that can take a job now (healthy, on an online worker).
    pub fn devices_ready(&self, device_type: &str) -> Result<Vec<String>> {
        let mut ready = Vec::new();
        // Each worker asked once, however many devices it has.
        let mut online: std::collections::HashMap<String, bool> = Default::default();
        for d in self.devices(device_type)? {
            let (Some(name), Some(worker)) = (d["hostname"].as_str(), d["worker_host"].as_str()) else {
                continue;
            };
            if !matches!(d["health"].as_str(), Some("Good") | Some("Unknown")) {
                continue;
            }
            if !online.contains_key(worker) {
                let (body, _) = self.call(&format!("workers/{worker}/"), &[])?;
                let w: Value = serde_json::from_slice(&body).unwrap_or_default();
                online.insert(worker.to_string(), w["state"].as_str() == Some("Online"));
            }
            if online[worker] {
                ready.push(name.to_string());
            }
        }
        Ok(ready)
    }

    /// Submits a definition; the job's id.
    pub fn submit(&self, definition: &Value) -> Result<u64> {
        let body = json!({"definition": definition.to_string()}).to_string();
        let (answer, status) = self
            .call("jobs/", &["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &body])?;
        let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
        match v["job_ids"].as_array().and_then(|ids| ids.first()).and_then(Value::as_u64) {
            Some(id) if status == "201" || status == "200" => Ok(id),
            _ => bail!(
                "the LAVA lab at {} refused the job (HTTP {status}): {}",
                self.url,
                String::from_utf8_lossy(&answer).trim()
            ),
        }
    }

    pub fn job(&self, id: u64) -> Result<JobState> {
        let (body, status) = self.call(&format!("jobs/{id}/"), &[])?;
        if status != "200" {
            bail!("the LAVA lab at {} has no job {id} (HTTP {status})", self.url);
        }
        JobState::parse(&body)
    }

    pub fn log(&self, id: u64) -> Result<JobLog> {
        let (body, status) = self.call(&format!("jobs/{id}/logs/"), &[])?;
        if status != "200" {
            // A job that never started has no log.
            return Ok(JobLog::default());
        }
        JobLog::parse(&String::from_utf8_lossy(&body))
    }

    /// Every job's id on the lab (for tests and `lab status`).
    pub fn job_ids(&self) -> Result<Vec<u64>> {
        let (body, _) = self.call("jobs/?limit=10000&ordering=id", &[])?;
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(v["results"].as_array().into_iter().flatten().filter_map(|j| j["id"].as_u64()).collect())
    }
}

/// A scratch file in the cache (answers may hold the lab's data; not /tmp's world).
fn tempfile_in_cache() -> Result<tempfile::NamedTempFile> {
    let dir = crate::reftree::cache_root().join("lava");
    std::fs::create_dir_all(&dir)?;
    Ok(tempfile::NamedTempFile::new_in(&dir)?)
}

/// A password nobody needs to know (the lab's admin logs in with its token).
pub fn random_word() -> String {
    let mut bytes = [0u8; 18];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in `file` (one line).
pub fn read_token(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the LAVA token file {}", file.display()))?;
    Ok(text.trim().to_string())
}
