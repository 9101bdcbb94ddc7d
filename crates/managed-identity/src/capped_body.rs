//! Reading a response body with a ceiling on the memory it may take: the one capped reader of the
//! repository. The identity endpoint's answers go through it, and so do the app's clients that
//! read whole bodies (the JWKS, the downstream API).

/// Why [`read_capped`] returned no whole body.
#[derive(Debug)]
pub enum CappedBodyError {
    /// The body is larger than the limit: its Content-Length says so (then nothing was read), or
    /// more arrived. `head` holds what was read, never more than the limit, for a caller that can
    /// use the start of an oversized answer (an error's detail).
    TooLarge {
        /// The first bytes of the body, at most the limit.
        head: Vec<u8>,
    },
    /// The body could not be read to its end (connection lost, timed out).
    Read(reqwest::Error),
}

/// Reads a response's body, refusing one larger than `limit` bytes: at once when its
/// Content-Length is over the limit, else as soon as what has arrived passes it, so a large or
/// endless body never costs more than `limit` bytes of memory.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CappedBodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(CappedBodyError::TooLarge { head: Vec::new() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CappedBodyError::Read)? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Err(CappedBodyError::TooLarge { head: body });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
