//! The partner guide's examples (docs/PARTNERS.md, examples/partner/), run as a partner runs them
//! against the real binary on a fresh SQLite database: the operator makes Groundspan's
//! credentials, a company administrator connects it (a request token for each run: they work
//! once), and each example — curl, Python, TypeScript — does the whole alert flow. The Python and
//! TypeScript receivers then get a company notification through a partner whose `postback_url`
//! points at them, verify it with the public `standardwebhooks` library, and recognise its replay
//! as a duplicate. The guide's code blocks are checked to be verbatim excerpts of these files.
//!
//! Without curl and jq, Python's `requests` and `standardwebhooks` (>= 1.1), or Node.js 20 and the
//! example's npm packages, a test is skipped with a `SKIPPED:` message, and fails under
//! `CI=true`; `.ci/run` installs them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::partner_guide_harness::*;

pub(crate) fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/partner")
}

#[tokio::test]
async fn the_curl_walkthrough_runs_the_whole_flow() {
    if !available(
        "the curl walkthrough of the partner guide",
        succeeds(
            Command::new("sh").args(["-c", "command -v bash && command -v curl && command -v jq"]),
        ),
        "it needs bash, curl and jq (apt-get install curl jq)",
    ) {
        return;
    }
    let dir = crate::real_binary::migrated_dir();
    let guide = Guide::start(dir.path()).await;
    let mut walkthrough = Command::new("bash");
    walkthrough.arg(examples().join("walkthrough.sh"));
    let output = guide.run_flow(walkthrough).await;
    assert_lines(
        &output,
        &[
            "company token: scope maestro.alerts.writeonly, expires in 3600 s",
            "template NOTIFY_TEMPLATE_ID v1",
            "NOTIFY_TEMPLATE_ID metadata requires: packages",
            "preview: Groundspan: 1 travel offer for you",
            "updated {alertId} by extRef",
            "updated {alertId} by id",
        ],
    );
    guide.assert_withdrawn(&output).await;
}

#[tokio::test]
async fn the_python_partner_runs_the_flow_and_verifies_a_postback() {
    if !available(
        "the Python example of the partner guide",
        succeeds(Command::new("python3").args([
            "-c",
            "import inspect, requests\n\
             from standardwebhooks.webhooks import Webhook\n\
             assert 'json_parse' in inspect.signature(Webhook.verify).parameters",
        ])),
        "it needs Python 3 with requests and standardwebhooks >= 1.1 \
         (python3 -m pip install requests 'standardwebhooks>=1.1')",
    ) {
        return;
    }
    let partner = || {
        let mut command = Command::new("python3");
        command.arg(examples().join("partner.py"));
        command
    };
    let dir = crate::real_binary::migrated_dir();
    let mut receiver = PostbackReceiver::start(dir.path(), "acme-py", partner());
    let guide = Guide::start(dir.path()).await;
    let output = guide.run_flow(partner()).await;
    assert_lines(&output, &["preview refused: 400", "updated {alertId}"]);
    guide.assert_withdrawn(&output).await;
    guide.notify(&mut receiver).await;
}

#[tokio::test]
async fn the_typescript_partner_runs_the_flow_and_verifies_a_postback() {
    let modules = examples().join("node_modules");
    if !available(
        "the TypeScript example of the partner guide",
        succeeds(Command::new("node").args([
            "-e",
            "process.exit(Number(process.versions.node.split('.')[0]) >= 20 ? 0 : 1)",
        ])),
        "it needs Node.js 20 or later",
    ) || !available(
        "the TypeScript example of the partner guide",
        modules.join(".bin/tsc").is_file() && modules.join("standardwebhooks").is_dir(),
        "its packages are not installed (npm ci --prefix examples/partner)",
    ) {
        return;
    }
    // Compiled as the example says (`npm run build`), with the TypeScript of its lock file.
    let compiled = Command::new(modules.join(".bin/tsc"))
        .args(["-p", examples().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr)
    );
    let partner = || {
        let mut command = Command::new("node");
        command.arg(examples().join("dist/partner.js"));
        command
    };
    let dir = crate::real_binary::migrated_dir();
    let mut receiver = PostbackReceiver::start(dir.path(), "acme-ts", partner());
    let guide = Guide::start(dir.path()).await;
    let output = guide.run_flow(partner()).await;
    assert_lines(&output, &["preview refused: 400", "updated {alertId}"]);
    guide.assert_withdrawn(&output).await;
    guide.notify(&mut receiver).await;
}

/// Every fenced block the guide marks with `<!-- examples/partner/FILE -->` on the line before
/// it is a verbatim excerpt of that file, and every example file is quoted: the guide shows the
/// code the tests run. Its relative links lead to files that exist.
#[test]
fn the_guide_quotes_the_example_files_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/PARTNERS.md")).unwrap();
    let lines: Vec<&str> = guide.lines().collect();
    let mut quoted = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let Some(source) = lines[at]
            .strip_prefix("<!-- ")
            .and_then(|rest| rest.strip_suffix(" -->"))
            .filter(|source| source.starts_with("examples/"))
        else {
            at += 1;
            continue;
        };
        assert!(
            lines
                .get(at + 1)
                .is_some_and(|fence| fence.starts_with("```")),
            "docs/PARTNERS.md:{}: a code block must follow <!-- {source} -->",
            at + 1
        );
        let end = (at + 2..lines.len())
            .find(|&i| lines[i] == "```")
            .unwrap_or_else(|| panic!("docs/PARTNERS.md:{}: unclosed block", at + 2));
        let excerpt = lines[at + 2..end].join("\n");
        let file = std::fs::read_to_string(root.join(source))
            .unwrap_or_else(|err| panic!("docs/PARTNERS.md:{}: {source}: {err}", at + 1));
        assert!(
            !excerpt.trim().is_empty() && file.contains(&excerpt),
            "docs/PARTNERS.md:{}: the block is not an excerpt of {source}:\n{excerpt}",
            at + 1
        );
        quoted.push(source.to_owned());
        at = end + 1;
    }
    for file in [
        "walkthrough.sh",
        "partner.py",
        "partner.ts",
        "offer.json",
        "package.json",
    ] {
        let source = format!("examples/partner/{file}");
        assert!(
            quoted.contains(&source),
            "the guide quotes no part of {source}"
        );
    }
    let mut rest = guide.as_str();
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let target = &rest[..rest.find(')').unwrap()];
        let path = target.split('#').next().unwrap();
        if path.is_empty() || path.contains("://") {
            continue;
        }
        assert!(
            root.join("docs").join(path).exists(),
            "docs/PARTNERS.md links to {target}, which does not exist"
        );
    }
}
