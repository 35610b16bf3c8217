//! Compiles proto/pubsub_api.proto with protox (pure Rust; no protoc on the build machine) and
//! generates the client and/or server stubs the crate's features ask for.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/pubsub_api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(fds)?;
    Ok(())
}
