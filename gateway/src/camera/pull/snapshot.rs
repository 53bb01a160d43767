//! One HTTP snapshot request: a GET that answers one JPEG (an NVR's or ONVIF camera's snapshot
//! URI), with Basic or Digest authentication.
//!
//! Digest (RFC 7616/2617, what most IP cameras ask for) is computed by the `digest_auth` crate
//! (also what `diqwest` uses; `diqwest` itself is built on reqwest 0.13, and we are on 0.12). The
//! server's challenge is kept and answered again with a counted `nc` on the next request; when
//! the camera refuses it (new nonce, `stale`), the fresh challenge is answered once within the
//! same fetch. So a fetch is at most two requests, each bounded by `timeout_ms`, and the body is
//! read up to [`MAX_FRAME_BYTES`].

use super::PullError;
use super::config::{MAX_FRAME_BYTES, PullAuth, PullSource};
use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use std::time::Duration;

/// What the next request sends.
#[derive(Debug)]
enum Answer {
    Nothing,
    Basic,
    Digest(Box<digest_auth::WwwAuthenticateHeader>),
}

/// A snapshot source's HTTP client and its authentication state.
pub(crate) struct SnapshotClient {
    http: reqwest::Client,
    url: reqwest::Url,
    /// The request-target that Digest hashes (path and query).
    uri: String,
    creds: Option<(String, String)>,
    auth: PullAuth,
    answer: Answer,
    timeout_ms: u64,
}

impl SnapshotClient {
    pub(crate) fn new(src: &PullSource) -> Result<Self, PullError> {
        let url = reqwest::Url::parse(&src.url).map_err(|e| PullError::Connect(e.to_string()))?;
        let uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(src.timeout_ms))
            .connect_timeout(Duration::from_millis(src.timeout_ms))
            // A redirect would need its own challenge; cameras answer in place.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PullError::Connect(e.to_string()))?;
        let creds = src
            .username
            .clone()
            .map(|u| (u, src.password.clone().unwrap_or_default()));
        let answer = match (src.auth, &creds) {
            (PullAuth::Basic, Some(_)) => Answer::Basic,
            _ => Answer::Nothing,
        };
        Ok(SnapshotClient {
            http,
            url,
            uri,
            creds,
            auth: src.auth,
            answer,
            timeout_ms: src.timeout_ms,
        })
    }

    /// One frame: the JPEG bytes, or why there is none.
    pub(crate) async fn fetch(&mut self) -> Result<Vec<u8>, PullError> {
        let mut challenged = false;
        loop {
            let resp = self.send().await?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                let Some(creds) = &self.creds else {
                    return Err(PullError::Unauthorized(
                        "the camera asks for credentials and none are configured".into(),
                    ));
                };
                if challenged {
                    self.answer = Answer::Nothing;
                    return Err(PullError::Unauthorized(format!(
                        "user `{}` was refused",
                        creds.0
                    )));
                }
                self.answer = choose(resp.headers(), self.auth)?;
                challenged = true;
                continue;
            }
            if !resp.status().is_success() {
                return Err(PullError::Status(resp.status().as_u16()));
            }
            return read_jpeg(resp).await;
        }
    }

    async fn send(&mut self) -> Result<reqwest::Response, PullError> {
        let mut req = self.http.get(self.url.clone());
        if let Some((user, pass)) = &self.creds {
            match &mut self.answer {
                Answer::Nothing => {}
                Answer::Basic => req = req.basic_auth(user, Some(pass)),
                Answer::Digest(challenge) => {
                    let ctx = digest_auth::AuthContext::new(user, pass, &self.uri);
                    let header = challenge
                        .respond(&ctx)
                        .map_err(|e| PullError::Unauthorized(format!("digest: {e}")))?;
                    req = req.header(AUTHORIZATION, header.to_header_string());
                }
            }
        }
        req.send().await.map_err(|e| {
            if e.is_timeout() {
                PullError::Timeout(self.timeout_ms)
            } else {
                PullError::Connect(error_chain(&e))
            }
        })
    }
}

/// The answer to a 401: Digest when offered (and allowed), else Basic (unless only Digest is).
fn choose(headers: &HeaderMap, auth: PullAuth) -> Result<Answer, PullError> {
    let offers: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let scheme_is = |h: &str, s: &str| {
        h.trim_start()
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    if let Some(d) = offers.iter().find(|h| scheme_is(h, "digest")) {
        let d = d.trim_start();
        // digest_auth strips a literal "Digest" prefix only; normalise the case.
        let challenge = digest_auth::parse(&format!("Digest{}", &d["digest".len()..]))
            .map_err(|e| PullError::Unauthorized(format!("unreadable digest challenge: {e}")))?;
        if auth == PullAuth::Basic {
            return Err(PullError::Unauthorized(
                "the camera asks for Digest and `auth = \"basic\"`".into(),
            ));
        }
        return Ok(Answer::Digest(Box::new(challenge)));
    }
    if offers.iter().any(|h| scheme_is(h, "basic")) {
        if auth == PullAuth::Digest {
            return Err(PullError::Unauthorized(
                "the camera asks for Basic and `auth = \"digest\"`".into(),
            ));
        }
        return Ok(Answer::Basic);
    }
    Err(PullError::Unauthorized(format!(
        "no Basic or Digest challenge in {offers:?}"
    )))
}

async fn read_jpeg(mut resp: reqwest::Response) -> Result<Vec<u8>, PullError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FRAME_BYTES as u64)
    {
        return Err(PullError::TooLarge(MAX_FRAME_BYTES));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| PullError::Connect(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_FRAME_BYTES {
            return Err(PullError::TooLarge(MAX_FRAME_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    if !body.starts_with(&[0xFF, 0xD8]) {
        let head: String = String::from_utf8_lossy(&body[..body.len().min(40)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err(PullError::NotJpeg(format!(
            "{} bytes starting `{head}`",
            body.len()
        )));
    }
    Ok(body)
}

/// The error and its causes on one line (reqwest's own message is only the outermost).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn digest_is_preferred_and_the_auth_setting_is_respected() {
        let both = headers(&[
            "Basic realm=\"cam\"",
            "digest realm=\"cam\", nonce=\"abc\", qop=\"auth\"",
        ]);
        assert!(matches!(
            choose(&both, PullAuth::Auto),
            Ok(Answer::Digest(_))
        ));
        assert!(matches!(
            choose(&both, PullAuth::Digest),
            Ok(Answer::Digest(_))
        ));
        let basic = headers(&["Basic realm=\"cam\""]);
        assert!(matches!(choose(&basic, PullAuth::Auto), Ok(Answer::Basic)));
        assert!(matches!(
            choose(&basic, PullAuth::Digest),
            Err(PullError::Unauthorized(_))
        ));
        assert!(matches!(
            choose(&headers(&["Bearer x"]), PullAuth::Auto),
            Err(PullError::Unauthorized(_))
        ));
        assert!(matches!(
            choose(&headers(&["Digest nonce=\"no realm\""]), PullAuth::Auto),
            Err(PullError::Unauthorized(_))
        ));
    }
}
