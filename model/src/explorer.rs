//! `check-model explore`: Stateright's web explorer, opened on the shortest
//! counterexample.
//!
//! Stateright's explorer starts on the initial state, and the path it shows
//! for a violated property is whatever its own on-demand search found first.
//! Here a breadth-first hunt (the one `check-model --all` uses) runs beside
//! it; a small front server on the user's address passes every request
//! through to the explorer, except that the page opens on the hunt's path
//! when it has one, and `/.status` links each property that path violates
//! to it.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use stateright::Model;

use crate::model::TidemarkModel;
use crate::properties;
use crate::shortest::{shortest_path, Trace};

/// What the hunt found: the counterexample's path in the explorer's
/// encoding (`0/3/1`: the initial state, then action indices) and the
/// properties its last state violates.
#[derive(Clone, Debug, Default)]
pub struct Landing {
    pub done: bool,
    pub path: Option<String>,
    pub violated: Vec<String>,
}

/// The explorer's encoding of a trace: the initial state's index, then the
/// index of each action among the actions enabled before it.
pub fn encode(model: &TidemarkModel, trace: &Trace<TidemarkModel>) -> String {
    let mut parts = vec!["0".to_string()];
    let mut state = &trace.init;
    let mut actions = Vec::new();
    for (action, next) in &trace.steps {
        actions.clear();
        model.actions(state, &mut actions);
        let index = actions.iter().position(|a| a == action).unwrap_or_else(|| unreachable!("a trace action is enabled"));
        parts.push(index.to_string());
        state = next;
    }
    parts.join("/")
}

/// Hunts the shortest state that violates any `always` property.
pub fn hunt(model: &TidemarkModel, budget: usize) -> Landing {
    let violated = |s: &crate::State| properties::ALWAYS.iter().any(|p| properties::explain(model, p, s).is_some());
    match shortest_path(model, violated, budget) {
        Some(trace) => {
            let last = trace.steps.last().map_or(&trace.init, |(_, s)| s);
            let names = properties::ALWAYS.iter().filter(|p| properties::explain(model, p, last).is_some()).map(|p| p.to_string()).collect();
            Landing { done: true, path: Some(encode(model, &trace)), violated: names }
        }
        None => Landing { done: true, path: None, violated: Vec::new() },
    }
}

/// Serves the explorer for `model` on `addr`; the hunt runs in the
/// background and `on_landing` hears its result. Blocks for good.
pub fn serve(model: TidemarkModel, addr: SocketAddr, budget: usize, on_landing: impl FnOnce(&Landing) + Send + 'static) -> io::Result<()> {
    let front = TcpListener::bind(addr)?;
    // The explorer itself listens on a loopback port of its own.
    let inner = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let landing = Arc::new(Mutex::new(Landing::default()));
    {
        let model = model.clone();
        thread::spawn(move || {
            model.checker().threads(1).serve(inner);
        });
    }
    {
        let landing = Arc::clone(&landing);
        thread::spawn(move || {
            let found = hunt(&model, budget);
            on_landing(&found);
            *landing.lock().unwrap_or_else(|e| e.into_inner()) = found;
        });
    }
    for stream in front.incoming() {
        let Ok(stream) = stream else { continue };
        let landing = Arc::clone(&landing);
        thread::spawn(move || {
            let _ = pass_through(stream, inner, &landing);
        });
    }
    Ok(())
}

/// The script put first into the page: while the reader has not chosen a
/// state (no `#/steps/...` in the address), open the hunt's path.
const LANDING_SCRIPT: &str = r#"<script>
(function land() {
  fetch('/.landing').then(r => r.json()).then(l => {
    if (location.hash && location.hash !== '#') return;
    if (l.path) { location.replace('#/steps/' + l.path); return; }
    if (!l.done) setTimeout(land, 500);
  }).catch(() => {});
})();
</script>"#;

fn pass_through(mut client: TcpStream, inner: SocketAddr, landing: &Mutex<Landing>) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
    let landing = landing.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if path == "/.landing" {
        let json = serde_json::json!({ "done": landing.done, "path": landing.path, "violated": landing.violated });
        return respond(&mut client, "200 OK", "application/json", json.to_string().as_bytes());
    }
    let mut upstream = TcpStream::connect(inner)?;
    write!(upstream, "{method} {path} HTTP/1.0\r\nHost: {inner}\r\nContent-Length: {length}\r\n\r\n")?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let (head, content) = response.split_at(split);
    let head = String::from_utf8_lossy(head);
    let status = head.lines().next().and_then(|l| l.split_once(' ')).map_or("502 Bad Gateway", |(_, s)| s).to_string();
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| if path == "/" { "text/html; charset=utf-8".into() } else { "application/octet-stream".into() });
    let content = match path.as_str() {
        "/" => inject_landing(content),
        "/.status" => link_violations(content, &landing),
        _ => content.to_vec(),
    };
    respond(&mut client, &status, &content_type, &content)
}

fn respond(client: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    write!(client, "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    client.write_all(body)?;
    client.flush()
}

fn inject_landing(page: &[u8]) -> Vec<u8> {
    let page = String::from_utf8_lossy(page);
    match page.find("<head>") {
        Some(i) => format!("{}<head>{LANDING_SCRIPT}{}", &page[..i], &page[i + "<head>".len()..]).into_bytes(),
        None => format!("{LANDING_SCRIPT}{page}").into_bytes(),
    }
}

/// Rewrites the explorer's status so that every property the hunt's path
/// violates links to that path (the explorer's own search finds longer ones).
fn link_violations(status: &[u8], landing: &Landing) -> Vec<u8> {
    let (Ok(mut json), Some(path)) = (serde_json::from_slice::<serde_json::Value>(status), &landing.path) else {
        return status.to_vec();
    };
    let violated: BTreeMap<&str, ()> = landing.violated.iter().map(|n| (n.as_str(), ())).collect();
    if let Some(props) = json.get_mut("properties").and_then(|p| p.as_array_mut()) {
        for p in props {
            let Some(entry) = p.as_array_mut() else { continue };
            let named = entry.get(1).and_then(|n| n.as_str()).is_some_and(|n| violated.contains_key(n));
            if named && entry.len() == 3 {
                entry[2] = serde_json::Value::String(path.clone());
            }
        }
    }
    serde_json::to_vec(&json).unwrap_or_else(|_| status.to_vec())
}
