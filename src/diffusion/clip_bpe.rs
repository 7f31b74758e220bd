//! CLIP's tokenizer as transformers' `CLIPTokenizer` (the slow one that diffusers pipelines
//! load, `model_index.json` → `CLIPTokenizer`) runs it without ftfy, which neither diffusers
//! nor ai-runner installs (transformers `models/clip/tokenization_clip.py`):
//! 1. BERT's BasicTokenizer with `do_split_on_punc=False`, `strip_accents=False`: control
//!    characters dropped, whitespace made spaces, spaces around CJK ideographs, lowercase;
//! 2. the words of `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` (one digit
//!    each, punctuation in runs), each as UTF-8 bytes mapped to GPT-2's byte characters;
//! 3. byte-pair merges by rank with `</w>` marking a word's end; a symbol outside the
//!    vocabulary is the unknown token (`<|endoftext|>`).
//!
//! Used where a model ships `vocab.json` + `merges.txt` without a `tokenizer.json`; checked id
//! for id against transformers on a corpus (tests/data/clip-tokens.json, written by
//! scripts/tokenizer-reference).

use std::collections::HashMap;

pub struct ClipBpe {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    bytes: [char; 256],
    words: regex::Regex,
    unk: u32,
}

/// GPT-2's map of bytes to printable characters (`bytes_to_unicode`): printable Latin-1 bytes
/// stand for themselves, the others for 256 + n in order.
pub fn byte_chars() -> [char; 256] {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut out = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        out[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("in range")
        };
    }
    out
}

impl ClipBpe {
    /// From `vocab.json`'s map and `merges.txt`'s text; `unk` is the unknown token.
    pub fn new(vocab: HashMap<String, u32>, merges: &str, unk: &str) -> Result<Self, String> {
        let unk = *vocab
            .get(unk)
            .ok_or_else(|| format!("vocab.json has no {unk}"))?;
        let ranks = merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                let mut it = l.split(' ');
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok(((a.to_string(), b.to_string()), i)),
                    _ => Err(format!("merges.txt line {}: '{l}'", i + 1)),
                }
            })
            .collect::<Result<_, _>>()?;
        // The `regex` crate's Unicode classes are the `regex` module's: \p{L}, \p{N}, \s.
        let words = regex::Regex::new(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .map_err(|e| e.to_string())?;
        Ok(ClipBpe {
            vocab,
            ranks,
            bytes: byte_chars(),
            words,
            unk,
        })
    }

    /// The id of a token of the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// The ids of `text`, without the start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = basic_clean(text);
        let mut ids = Vec::new();
        for m in self.words.find_iter(&text) {
            // The start and end tokens written out in a prompt are those tokens.
            if let Some(&id) = ["<|startoftext|>", "<|endoftext|>"]
                .contains(&m.as_str())
                .then(|| self.vocab.get(m.as_str()))
                .flatten()
            {
                ids.push(id);
                continue;
            }
            let word: String = m.as_str().bytes().map(|b| self.bytes[b as usize]).collect();
            for piece in self.bpe(&word) {
                ids.push(*self.vocab.get(&piece).unwrap_or(&self.unk));
            }
        }
        ids
    }

    /// Merges `word`'s characters (the last with `</w>`) by rank, lowest first.
    fn bpe(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0].clone(), w[1].clone())))
                .min()
                .copied();
            let Some(rank) = best else { break };
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len()
                    && self.ranks.get(&(parts[i].clone(), parts[i + 1].clone())) == Some(&rank)
                {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }
}

/// BERT's BasicTokenizer as CLIPTokenizer configures it, then the words joined by spaces.
fn basic_clean(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        let cp = c as u32;
        if cp == 0 || cp == 0xfffd || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            s.push(' ');
        } else if is_cjk(cp) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    s.split_whitespace()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// BasicTokenizer's `_is_whitespace`: space, tab, newline, return, and Unicode Zs.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r') || (c.is_whitespace() && is_space_separator(c))
}

fn is_space_separator(c: char) -> bool {
    matches!(
        c as u32,
        0x20 | 0xa0 | 0x1680 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000
    )
}

/// `_is_control`: categories Cc and Cf, except tab, newline and return.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.is_control() || is_format(c as u32)
}

/// Unicode category Cf (format characters) in the ranges prompts meet.
fn is_format(cp: u32) -> bool {
    matches!(
        cp,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
            | 0xe0001 | 0xe0020..=0xe007f
    )
}

/// `_is_chinese_char`: the CJK Unified Ideographs blocks.
fn is_cjk(cp: u32) -> bool {
    matches!(
        cp,
        0x4e00..=0x9fff
            | 0x3400..=0x4dbf
            | 0x20000..=0x2a6df
            | 0x2a700..=0x2b73f
            | 0x2b740..=0x2b81f
            | 0x2b820..=0x2ceaf
            | 0xf900..=0xfaff
            | 0x2f800..=0x2fa1f
    )
}
