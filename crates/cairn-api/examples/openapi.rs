//! Prints the OpenAPI document cairnd serves, as committed in `docs/openapi.json`:
//!
//! ```sh
//! cargo run -q -p cairn-api --example openapi > docs/openapi.json
//! ```

fn main() -> Result<(), serde_json::Error> {
    print!("{}", cairn_api::openapi_json()?);
    Ok(())
}
