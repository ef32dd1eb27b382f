//! What the delivery benchmark adds to `support/server.rs`: the partner pointed at the
//! receiver, and the tokens to subscribe it and to publish events.

use std::{path::Path, process::Command};

use super::server::{issue_token, migrate};

pub const COMPANY: &str = "b7d12989-0489-471a-81cd-175f8b78afa5";
const ADMIN: &str = "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11";
pub const PARTNER: &str = "benchpartner";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs the CLI of `binary` against the database; its standard output, trimmed.
pub struct Cli<'a> {
    pub binary: &'a str,
    pub url: &'a str,
    pub master_key: &'a str,
}

impl Cli<'_> {
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(self.binary)
            .args(args)
            .args(["--database-url", self.url])
            .env("MAESTRO_MASTER_KEY", self.master_key)
            .output()?;
        anyhow::ensure!(output.status.success(), "{args:?} failed: {output:?}");
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// Migrates, and registers the partner with the receiver as its postback URL.
    pub fn prepare(&self, dir: &Path, receiver: &str) -> anyhow::Result<()> {
        migrate(self.binary, self.url, self.master_key)?;
        let partner = dir.join(PARTNER);
        let template = partner.join("templates/NOTIFY_TEMPLATE_ID");
        std::fs::create_dir_all(&template)?;
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("partners/groundspan/templates/NOTIFY_TEMPLATE_ID");
        for entry in std::fs::read_dir(bundled)? {
            let entry = entry?;
            std::fs::copy(entry.path(), template.join(entry.file_name()))?;
        }
        std::fs::write(
            partner.join("partner.toml"),
            format!(
                "id = \"{PARTNER}\"\nname = \"Bench\"\nallowed_url_domains = [\"groundspan.com\", \"concur.com\"]\n\
                 postback_url = \"http://{receiver}/postback\"\npostback_secret = \"{SECRET}\"\n"
            ),
        )?;
        self.run(&["partner", "import", partner.to_str().expect("a UTF-8 path")])?;
        Ok(())
    }

    /// A company administrator's token in the partner's application (to subscribe).
    pub fn admin_token(&self) -> anyhow::Result<String> {
        issue_token(
            self.binary,
            self.url,
            self.master_key,
            &[
                "--type",
                "user",
                "--subject",
                ADMIN,
                "--app",
                PARTNER,
                "--company",
                COMPANY,
                "--role",
                "CompanyAdministrator",
            ],
        )
    }

    /// An internal producer's token (to publish events).
    pub fn producer_token(&self) -> anyhow::Result<String> {
        issue_token(
            self.binary,
            self.url,
            self.master_key,
            &[
                "--type",
                "app",
                "--subject",
                "bench-producer",
                "--app",
                "bench-producer",
                "--scope",
                "maestro.events.publish",
            ],
        )
    }
}
