//! Checks of the dependency graph once every BUILD file is evaluated: each dependency exists,
//! and no target depends on itself through others.

use std::collections::HashMap;

use remex_model::{Address, Target};

use crate::error::{BuildFileError, Problem};
use crate::suggest::closest;

/// Fails on the first missing dependency or cycle, in address order. `targets` must be sorted
/// by address.
pub(crate) fn check_dependencies(targets: &[Target]) -> Result<(), BuildFileError> {
    let index: HashMap<&Address, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, target)| (&target.address, i))
        .collect();
    for target in targets {
        for dependency in &target.dependencies {
            if !index.contains_key(dependency) {
                return Err(missing(target, dependency, targets));
            }
        }
    }
    find_cycle(targets, &index)
}

fn missing(target: &Target, dependency: &Address, targets: &[Target]) -> BuildFileError {
    let same_directory = targets
        .iter()
        .filter(|other| other.address.dir == dependency.dir)
        .map(|other| other.address.name.as_str());
    let suggestion = closest(&dependency.name, same_directory)
        .map(|name| Address::new(dependency.dir.clone(), name).to_string());
    let problem = Problem::MissingDependency {
        target: target.address.to_string(),
        dependency: dependency.to_string(),
        suggestion,
    };
    BuildFileError::at(target.location.clone(), problem)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unvisited,
    /// On the current depth-first path.
    InProgress,
    Done,
}

/// Depth-first search with an explicit stack, so a long chain of dependencies cannot overflow
/// the thread's stack. The error is placed at the target whose dependency closes the loop.
fn find_cycle(targets: &[Target], index: &HashMap<&Address, usize>) -> Result<(), BuildFileError> {
    let mut marks = vec![Mark::Unvisited; targets.len()];
    for root in 0..targets.len() {
        if marks[root] != Mark::Unvisited {
            continue;
        }
        // Each entry: a target and how many of its dependencies have been followed.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::InProgress;
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            let Some(dependency) = targets[node].dependencies.get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            // Missing dependencies were reported before the search.
            let Some(&child) = index.get(dependency) else {
                continue;
            };
            match marks[child] {
                Mark::Unvisited => {
                    marks[child] = Mark::InProgress;
                    path.push((child, 0));
                }
                Mark::InProgress => return Err(cycle(targets, &path, child)),
                Mark::Done => {}
            }
        }
    }
    Ok(())
}

/// The error for the loop from `start` along `path` back to `start`.
fn cycle(targets: &[Target], path: &[(usize, usize)], start: usize) -> BuildFileError {
    let from = path
        .iter()
        .position(|(node, _)| *node == start)
        .unwrap_or(0);
    let (last, _) = path[path.len() - 1];
    // Listed from the target that closes the loop, so the message starts where the error points.
    let mut cycle = vec![targets[last].address.to_string()];
    cycle.extend(
        path[from..]
            .iter()
            .map(|(node, _)| targets[*node].address.to_string()),
    );
    BuildFileError::at(
        targets[last].location.clone(),
        Problem::DependencyCycle { cycle },
    )
}
