//! Keeping pipelines to one slot, as a Redis Cluster requires.
//!
//! A Redis Cluster runs a pipeline on the shard of its first key and refuses keys of other
//! slots, so writes that touch several (a connection's record on its node's slot, its groups
//! on its function's slot) are sent as one pipeline per slot. Order is kept within a slot,
//! which is the only order a cluster can keep anyway.

use redis::cluster_routing::Slot;
use redis::{Arg, Cmd, Pipeline};

/// The slot of a command's first key: the argument after the command's name for every command
/// the host pipelines (HSET, SADD, SREM, DEL, HDEL, SPUBLISH, XADD ...), and after the script
/// and the key count for a script (EVAL, EVALSHA).
pub fn slot_of(command: &Cmd) -> Option<Slot> {
    let mut args = command.args_iter();
    let key_at = match args.next()? {
        Arg::Simple(name) if name.eq_ignore_ascii_case(b"EVAL") => 2,
        Arg::Simple(name) if name.eq_ignore_ascii_case(b"EVALSHA") => 2,
        _ => 0,
    };
    match args.nth(key_at)? {
        Arg::Simple(key) => Some(Slot::for_key(key)),
        _ => None,
    }
}

/// The commands as pipelines of one slot each (their replies ignored), in the order each slot
/// first appears; with `split` false, one pipeline of everything.
pub fn pipelines(commands: impl IntoIterator<Item = Cmd>, split: bool) -> Vec<Pipeline> {
    let mut slots: Vec<(Option<Slot>, Pipeline)> = Vec::new();
    for command in commands {
        let slot = if split { slot_of(&command) } else { None };
        let index = match slots.iter().position(|(s, _)| *s == slot) {
            Some(index) => index,
            None => {
                slots.push((slot, redis::pipe()));
                slots.len() - 1
            }
        };
        slots[index].1.add_command(command).ignore();
    }
    slots.into_iter().map(|(_, pipeline)| pipeline).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sadd(key: &str) -> Cmd {
        redis::cmd("SADD").arg(key).arg("member").clone()
    }

    #[test]
    fn keys_with_one_hash_tag_share_a_pipeline_and_keep_their_order() {
        let split = pipelines(
            [
                sadd("wsfn:{f:chat}:g:a"),
                sadd("wsfn:{n:1}:conns"),
                sadd("wsfn:{f:chat}:conns"),
            ],
            true,
        );
        assert_eq!(split.len(), 2);
        let first: Vec<_> = split[0]
            .cmd_iter()
            .map(|c| c.get_packed_command())
            .collect();
        assert_eq!(
            first,
            vec![
                sadd("wsfn:{f:chat}:g:a").get_packed_command(),
                sadd("wsfn:{f:chat}:conns").get_packed_command()
            ]
        );
    }

    #[test]
    fn without_a_cluster_everything_is_one_pipeline() {
        let one = pipelines([sadd("a"), sadd("b"), sadd("c")], false);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].len(), 3);
    }

    #[test]
    fn a_script_s_slot_is_its_first_key_s() {
        let script = redis::cmd("EVAL")
            .arg("return 1")
            .arg(1)
            .arg("wsfn:{s:1}:rec")
            .clone();
        assert_eq!(slot_of(&script), Some(Slot::for_key(b"wsfn:{s:1}:rec")));
        assert_eq!(slot_of(&sadd("wsfn:{s:1}:x")), slot_of(&script));
    }

    #[test]
    fn the_slot_is_the_hash_tag_s() {
        assert_eq!(slot_of(&sadd("x{tag}y")), slot_of(&sadd("{tag}")));
        assert_ne!(slot_of(&sadd("{tag}")), slot_of(&sadd("{other}")));
    }
}
