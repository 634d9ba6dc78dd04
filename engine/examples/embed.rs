//! The README's embedding example: open, put, get, close.

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    db.put("hello", "world").await?; // returns once the write is durable
    let value = db.get("hello").await?;
    assert_eq!(value.as_deref(), Some(&b"world"[..]));
    println!("hello = {}", String::from_utf8_lossy(&value.unwrap_or_default()));
    db.close().await
}
