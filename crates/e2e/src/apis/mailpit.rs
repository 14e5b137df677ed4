//! Mailpit's API: the messages it caught and their bodies.

use serde::Deserialize;

use super::Http;

#[derive(Debug, Deserialize)]
pub struct Messages {
    pub messages: Vec<MessageSummary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageSummary {
    #[serde(rename = "ID")]
    pub id: String,
    pub subject: String,
    pub to: Vec<Address>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Address {
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    #[serde(rename = "HTML", default)]
    pub html: String,
    #[serde(default)]
    pub text: String,
}

impl MessageSummary {
    /// `Subject -> to,to`.
    pub fn describe(&self) -> String {
        let to: Vec<&str> = self.to.iter().map(|a| a.address.as_str()).collect();
        format!("{} -> {}", self.subject, to.join(","))
    }
}

/// Mailpit's API at `base`.
#[derive(Debug, Clone)]
pub struct Mailpit {
    pub http: Http,
    pub base: String,
}

impl Mailpit {
    pub async fn messages(&self) -> anyhow::Result<Vec<MessageSummary>> {
        let list: Messages = self
            .http
            .get(&self.base, "/api/v1/messages", &[("limit", "50")])
            .await?;
        Ok(list.messages)
    }

    pub async fn message(&self, id: &str) -> anyhow::Result<Message> {
        self.http
            .get(&self.base, &format!("/api/v1/message/{id}"), &[])
            .await
    }
}
