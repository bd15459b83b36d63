//! The xenstore nodes that wire a guest's device to this backend, as a
//! toolstack would write them, computed purely (see the crate docs for
//! why no libxl is involved).
//!
//! The frontend's directory `/local/domain/D/device/KIND/DEVID` belongs
//! to the guest (`nD`) and dom0 may read it (`r0`); the backend's,
//! `/local/domain/0/backend/paravane-KIND/D/DEVID`, belongs to dom0
//! (`n0`) and the guest may read it (`rD`).

/// One node: path, value, permissions.
pub type Node = (String, String, Vec<String>);

/// Where one device's two directories are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The frontend's directory.
    pub front: String,
    /// The backend's directory.
    pub back: String,
}

impl Paths {
    /// For device `devid` of kind `kind` (`vbd`, `vif`) of domain `domid`.
    pub fn new(kind: &str, domid: u32, devid: u32) -> Paths {
        Paths {
            front: format!("/local/domain/{domid}/device/{kind}/{devid}"),
            back: format!("/local/domain/0/backend/paravane-{kind}/{domid}/{devid}"),
        }
    }
}

/// The nodes for a fresh device: the frontend's (`backend`,
/// `backend-id`, `state` Initialising, plus `extra_front`) and the
/// backend's (`frontend`, `frontend-id`, `online`, `state`
/// Initialising), directories included, each with its permissions.
pub fn device_nodes(paths: &Paths, domid: u32, extra_front: &[(&str, String)]) -> Vec<Node> {
    let guest = vec![format!("n{domid}"), "r0".to_string()];
    let ours = vec!["n0".to_string(), format!("r{domid}")];
    let parent = |path: &str| {
        path.rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    };
    let mut nodes: Vec<Node> = vec![
        (parent(&paths.front), String::new(), guest.clone()),
        (paths.front.clone(), String::new(), guest.clone()),
    ];
    let front_keys = [
        ("backend", paths.back.clone()),
        ("backend-id", "0".to_string()),
        ("state", "1".to_string()),
    ];
    for (key, value) in front_keys
        .iter()
        .cloned()
        .chain(extra_front.iter().cloned())
    {
        nodes.push((format!("{}/{key}", paths.front), value, guest.clone()));
    }
    nodes.push((parent(&paths.back), String::new(), ours.clone()));
    nodes.push((paths.back.clone(), String::new(), ours.clone()));
    for (key, value) in [
        ("frontend", paths.front.clone()),
        ("frontend-id", domid.to_string()),
        ("online", "1".to_string()),
        ("state", "1".to_string()),
    ] {
        nodes.push((format!("{}/{key}", paths.back), value, ours.clone()));
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_owns_its_nodes_and_reads_ours() {
        let paths = Paths::new("vbd", 7, 51712);
        assert_eq!(paths.back, "/local/domain/0/backend/paravane-vbd/7/51712");
        let nodes = device_nodes(&paths, 7, &[("virtual-device", "51712".into())]);
        let find = |p: &str| nodes.iter().find(|n| n.0 == p).unwrap();
        let backend = find("/local/domain/7/device/vbd/51712/backend");
        assert_eq!(backend.1, paths.back);
        assert_eq!(backend.2, vec!["n7", "r0"]);
        assert_eq!(find("/local/domain/7/device/vbd").2, vec!["n7", "r0"]);
        assert_eq!(
            find("/local/domain/7/device/vbd/51712/virtual-device").1,
            "51712"
        );
        let state = find("/local/domain/0/backend/paravane-vbd/7/51712/state");
        assert_eq!(
            (state.1.as_str(), state.2.clone()),
            ("1", vec!["n0".into(), "r7".into()])
        );
        // Directories come before the keys in them.
        let dir = nodes.iter().position(|n| n.0 == paths.back).unwrap();
        let key = nodes
            .iter()
            .position(|n| n.0.starts_with(&format!("{}/", paths.back)))
            .unwrap();
        assert!(dir < key);
    }
}
