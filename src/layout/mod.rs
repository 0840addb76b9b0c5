//! Layouts: how the job's ranks split into groups (sub-communicators) that run the same measurement at
//! the same time, resolved from a `--groups` spec and every rank's host.

pub mod figures;
pub mod peaks;
pub mod spec;

pub use spec::{parse_list, parse_split, parse_split_mask, GroupSpec, SplitOp};

use crate::backend::{Backend, Comm, GroupJoin};
use crate::error::{Error, Result};
pub use crate::report::document::{Group, LayoutReport};
use crate::world::World;

/// One layout resolved on this job, seen from this rank.
#[derive(Debug, Clone)]
pub struct Layout {
    /// None for the whole job as one communicator (no --groups).
    pub spec: Option<GroupSpec>,
    /// Groups in order of their first member.
    pub groups: Vec<Group>,
    /// This rank's group.
    pub mine: usize,
    /// The communicator this rank measures on in this layout.
    pub comm: Comm,
    /// Each group's own speed of light (`peaks::group_peaks`), in `groups` order; empty until known.
    pub peaks: Vec<Option<crate::topo::peak::Peak>>,
}

/// Every layout of `specs` on this job, each with this rank's communicator made by the backend, all
/// before the first row; without specs, the whole job on the backend's own communicator. Every rank
/// calls it together; a spec the job cannot split into is refused the same way on every rank.
pub fn create(
    specs: &[GroupSpec],
    hosts: &[String],
    world: &dyn World,
    backend: &mut dyn Backend,
) -> Result<Vec<Layout>> {
    let rank = world.rank();
    if specs.is_empty() {
        return Ok(vec![Layout::whole(hosts, rank)]);
    }
    let mut layouts: Vec<Layout> = specs
        .iter()
        .map(|&spec| Layout::resolve(spec, hosts, rank))
        .collect::<Result<_>>()?;
    for layout in &mut layouts {
        let join = GroupJoin {
            color: layout.mine,
            rank: layout.comm.rank,
            size: layout.comm.size,
            leader: layout.leader(),
        };
        layout.comm.id = backend.split(world, &join)?;
    }
    Ok(layouts)
}

impl Layout {
    /// The whole job as one group, on the backend's own communicator.
    pub fn whole(hosts: &[String], rank: usize) -> Layout {
        Layout {
            spec: None,
            groups: vec![Group {
                members: (0..hosts.len()).collect(),
                hosts: hosts.to_vec(),
            }],
            mine: 0,
            comm: Comm::whole(rank, hosts.len()),
            peaks: Vec::new(),
        }
    }

    /// The groups of `spec` on a job whose ranks run on `hosts`; `comm.id` is left to the backend's split.
    pub fn resolve(spec: GroupSpec, hosts: &[String], rank: usize) -> Result<Layout> {
        let size = hosts.len();
        if let GroupSpec::Blocks(k) | GroupSpec::Stride(k) = spec {
            if k > size || size % k != 0 {
                return Err(Error::usage(format!(
                    "--groups {spec}: the {size} ranks of this job do not split into groups of that spec (K must divide {size}): give a K that divides the rank count"
                )));
            }
        }
        let colors: Vec<u64> = (0..size).map(|r| spec.color(r, size, hosts)).collect();
        let mut order: Vec<u64> = Vec::new();
        for &c in &colors {
            if !order.contains(&c) {
                order.push(c);
            }
        }
        let groups: Vec<Group> = order
            .iter()
            .map(|&c| {
                let members: Vec<usize> = (0..size).filter(|&r| colors[r] == c).collect();
                let hosts = members.iter().map(|&r| hosts[r].clone()).collect();
                Group { members, hosts }
            })
            .collect();
        let mine = groups
            .iter()
            .position(|g| g.members.contains(&rank))
            .unwrap_or(0);
        let group_rank = groups[mine]
            .members
            .iter()
            .position(|&r| r == rank)
            .unwrap_or(0);
        let comm = Comm {
            id: 0,
            rank: group_rank,
            size: groups[mine].members.len(),
        };
        Ok(Layout {
            spec: Some(spec),
            groups,
            mine,
            comm,
            peaks: Vec::new(),
        })
    }

    /// "2x4" for two blocks of four ranks, "2x4/st" for strided groups, "2x4/host", "2x4/MOD2";
    /// "3 groups" where their sizes differ.
    pub fn label(&self) -> String {
        let first = self.groups[0].members.len();
        let shape = if self.groups.iter().all(|g| g.members.len() == first) {
            format!("{}x{first}", self.groups.len())
        } else {
            format!("{} groups", self.groups.len())
        };
        match self.spec {
            None | Some(GroupSpec::Blocks(_)) => shape,
            Some(GroupSpec::Stride(_)) => format!("{shape}/st"),
            Some(GroupSpec::Host) => format!("{shape}/host"),
            Some(spec @ GroupSpec::Split(..)) => {
                let rule = spec.to_string();
                format!("{shape}/{}", rule.trim_start_matches("nccl-tests:"))
            }
        }
    }

    /// What the JSON and the header say of this layout; None for the whole job.
    pub fn report(&self) -> Option<LayoutReport> {
        self.spec.map(|spec| LayoutReport {
            spec: spec.to_string(),
            label: self.label(),
            groups: self.groups.clone(),
        })
    }

    /// The job rank that leads (is rank 0 of) this rank's group.
    pub fn leader(&self) -> usize {
        self.groups[self.mine].members[0]
    }

    /// The group sizes of this layout, largest first.
    pub fn largest_group(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.members.len())
            .max()
            .unwrap_or(1)
    }

    /// The smallest group of this layout.
    pub fn smallest_group(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.members.len())
            .min()
            .unwrap_or(1)
    }

    /// Which group each job rank is in.
    pub fn group_of_rank(&self) -> Vec<usize> {
        let n: usize = self.groups.iter().map(|g| g.members.len()).sum();
        let mut of = vec![0; n];
        for (g, group) in self.groups.iter().enumerate() {
            for &r in &group.members {
                of[r] = g;
            }
        }
        of
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn blocks_strides_and_hosts_resolve_to_member_lists() {
        let h = hosts(&["a", "a", "b", "b"]);
        let l = Layout::resolve(GroupSpec::Blocks(2), &h, 3).unwrap();
        assert_eq!(l.groups[0].members, [0, 1]);
        assert_eq!(l.groups[1].members, [2, 3]);
        assert_eq!(l.groups[1].hosts, ["b", "b"]);
        assert_eq!((l.mine, l.comm.rank, l.comm.size), (1, 1, 2));
        assert_eq!(l.label(), "2x2");
        assert_eq!(l.leader(), 2);

        let s = Layout::resolve(GroupSpec::Stride(2), &h, 3).unwrap();
        assert_eq!(s.groups[0].members, [0, 2]);
        assert_eq!(s.groups[1].members, [1, 3]);
        assert_eq!(s.groups[1].hosts, ["a", "b"]);
        assert_eq!(s.group_of_rank(), [0, 1, 0, 1]);
        assert_eq!(s.label(), "2x2/st");

        let by_host = Layout::resolve(GroupSpec::Host, &h, 0).unwrap();
        assert_eq!(
            by_host.groups,
            Layout::resolve(GroupSpec::Blocks(2), &h, 0).unwrap().groups
        );

        let mod2 = Layout::resolve(parse_split("MOD2").unwrap(), &h, 1).unwrap();
        assert_eq!(mod2.groups, s.groups);
    }

    #[test]
    fn uneven_splits_are_refused_and_uneven_rules_labelled() {
        let h = hosts(&["a"; 4]);
        let e = Layout::resolve(GroupSpec::Blocks(3), &h, 0).unwrap_err();
        assert!(e.to_string().contains("--groups 3"), "{e}");
        assert!(Layout::resolve(GroupSpec::Stride(8), &h, 0).is_err());
        // AND 2 on 3 ranks: colors 0, 0, 2.
        let l = Layout::resolve(parse_split("AND 2").unwrap(), &h[..3], 2).unwrap();
        assert_eq!(l.label(), "2 groups/AND2");
        assert_eq!((l.smallest_group(), l.largest_group()), (1, 2));
    }
}
