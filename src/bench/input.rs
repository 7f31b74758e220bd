//! What a benchmark feeds its sessions: the segments of an HLS media playlist, every `.ts`
//! file of a directory (in name order), or the built-in clip.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One source segment and its media duration in seconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputSegment {
    pub path: PathBuf,
    pub duration: f64,
}

/// Reads `--in`: a `.m3u8` media playlist (durations from `#EXTINF`, URIs relative to the
/// playlist) or a directory of `.ts` segments (durations from the container).
pub fn load(spec: &Path) -> Result<Vec<InputSegment>> {
    let segs = if spec.is_dir() {
        from_dir(spec)?
    } else if spec
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("m3u8"))
    {
        from_playlist(spec)?
    } else {
        bail!(
            "{}: expected an HLS media playlist (.m3u8) or a directory of .ts segments",
            spec.display()
        )
    };
    if segs.is_empty() {
        bail!("{}: no segments found", spec.display());
    }
    Ok(segs)
}

fn from_playlist(path: &Path) -> Result<Vec<InputSegment>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !text.trim_start().starts_with("#EXTM3U") {
        bail!(
            "{}: not an HLS playlist (no #EXTM3U header)",
            path.display()
        );
    }
    if text.contains("#EXT-X-STREAM-INF") {
        bail!(
            "{}: a master playlist; give one of its media playlists",
            path.display()
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut duration = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let d = rest.split(',').next().unwrap_or("").trim();
            duration = Some(
                d.parse::<f64>()
                    .with_context(|| format!("{}: bad #EXTINF '{line}'", path.display()))?,
            );
        } else if !line.is_empty() && !line.starts_with('#') {
            if line.contains("://") {
                bail!(
                    "{}: remote segment URI '{line}' (give local files)",
                    path.display()
                );
            }
            let d = duration
                .take()
                .with_context(|| format!("{}: segment '{line}' has no #EXTINF", path.display()))?;
            out.push(InputSegment {
                path: base.join(line),
                duration: d,
            });
        }
    }
    Ok(out)
}

fn from_dir(dir: &Path) -> Result<Vec<InputSegment>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ts")))
        .collect();
    paths.sort_by_key(|p| natural_key(p));
    paths
        .into_iter()
        .map(|path| {
            let duration = media_duration(&path)?;
            Ok(InputSegment { path, duration })
        })
        .collect()
}

/// Sort key that puts `seg2` before `seg10`.
fn natural_key(p: &Path) -> (String, u64, String) {
    let name = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let digits_at = name
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map_or(name.len(), |(i, _)| i);
    let (head, rest) = name.split_at(digits_at);
    let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (
        head.to_string(),
        num.parse().unwrap_or(0),
        rest[num.len()..].to_string(),
    )
}

/// Duration of a media file from its container.
pub fn media_duration(path: &Path) -> Result<f64> {
    crate::media::init();
    let input = ffmpeg_next::format::input(path)
        .with_context(|| format!("{}: not a readable media file", path.display()))?;
    let d = input.duration();
    if d <= 0 {
        bail!("{}: unknown duration", path.display());
    }
    Ok(d as f64 / f64::from(ffmpeg_next::ffi::AV_TIME_BASE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_durations_and_relative_uris() {
        let dir = std::env::temp_dir().join(format!("gpuworker-m3u8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("source.m3u8");
        std::fs::write(
            &p,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nsource/0.ts\n#EXTINF:1.5,\n1.ts\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        let s = from_playlist(&p).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].path, dir.join("source/0.ts"));
        assert_eq!((s[0].duration, s[1].duration), (2.0, 1.5));
        std::fs::write(&p, "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n").unwrap();
        assert!(from_playlist(&p)
            .unwrap_err()
            .to_string()
            .contains("master"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn natural_order() {
        let mut v = [PathBuf::from("seg10.ts"), PathBuf::from("seg2.ts")];
        v.sort_by_key(|p| natural_key(p));
        assert_eq!(v[0], PathBuf::from("seg2.ts"));
    }
}
