//! Structural checks of the ARM template `infra/azuredeploy.json`.
//!
//! No ARM validator runs here, so this file is the check: it parses the template and verifies the
//! security-relevant shape (no shared keys, SAS or connection string, RBAC vault, identity-based
//! host storage, the app's data in an account of its own), the Flex Consumption default (FC1,
//! runtime custom 1.0, deployment container read with the host identity, no setting Flex refuses)
//! and the Dedicated variant's extra settings, that every role assignment grants the right built-in
//! role to the right identity on the right resource, that ARM's ordering (`dependsOn`) covers what
//! each resource references, and that every setting the handler needs in Azure
//! (`handler::config::APP_SETTINGS` with `deployed`) is set.
//!
//! Every check returns the list of problems it found. The `*_passes` tests assert the real template
//! has none; the `mutation_*` tests break a copy of the template on purpose and assert the check
//! names the breakage, so a check that silently accepts everything cannot go unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use handler::config::APP_SETTINGS;
use serde_json::{Value, json};

/// Where the template lives, relative to the package root.
const TEMPLATE_PATH: &str = "infra/azuredeploy.json";

/// Built-in role names and their role definition GUIDs, as listed in Microsoft's "Azure built-in
/// roles" reference (MicrosoftDocs/azure-docs `articles/role-based-access-control/built-in-roles.md`,
/// ms.date 04/09/2026, Storage and Security tables). Built-in role ids are the same in every cloud.
const BUILT_IN_ROLES: &[(&str, &str)] = &[
    (
        "Key Vault Secrets User",
        "4633458b-17de-408a-b874-0445c86b69e6",
    ),
    (
        "Key Vault Secrets Officer",
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    ),
    (
        "Storage Blob Data Contributor",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    ),
    (
        "Storage Blob Data Owner",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    ),
    (
        "Storage Queue Data Contributor",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    ),
    (
        "Storage Table Data Contributor",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    ),
];

/// The HTTP-triggered functions of the app, used when the function folders are not in the tree.
const HTTP_FUNCTIONS: &[&str] = &[
    "GetSecret",
    "WriteBlob",
    "ReadBlob",
    "TokenInfo",
    "CallApi",
    "Whoami",
];

const TYPE_IDENTITY: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";
const TYPE_STORAGE: &str = "Microsoft.Storage/storageAccounts";
const TYPE_VAULT: &str = "Microsoft.KeyVault/vaults";
const TYPE_PLAN: &str = "Microsoft.Web/serverfarms";
const TYPE_SITE: &str = "Microsoft.Web/sites";
const TYPE_ROLE_ASSIGNMENT: &str = "Microsoft.Authorization/roleAssignments";
const TYPE_CONTAINER: &str = "Microsoft.Storage/storageAccounts/blobServices/containers";
const TYPE_SITE_CONFIG: &str = "Microsoft.Web/sites/config";

// ---------------------------------------------------------------------------------------------
// Loading and small helpers
// ---------------------------------------------------------------------------------------------

/// The package root, where `infra/` and the function folders live.
fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The template as raw text (for the "no key material anywhere" scan).
fn template_text() -> String {
    let path = package_root().join(TEMPLATE_PATH);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The template parsed as JSON.
fn template() -> Value {
    serde_json::from_str(&template_text())
        .unwrap_or_else(|e| panic!("{TEMPLATE_PATH} is not valid JSON: {e}"))
}

/// Fails the test with every problem listed, one per line.
fn assert_no_problems(check: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{check} found {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// Asserts that a check run on a deliberately broken template reports a problem mentioning `needle`.
fn assert_detects(check: &str, problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "{check} did not report the breakage (expected a problem mentioning {needle:?}); it reported: {problems:#?}"
    );
}

/// Removes whitespace outside single-quoted ARM string literals, so expressions compare by meaning.
fn compact(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut in_literal = false;
    for c in expr.chars() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if in_literal || !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The expression inside `[...]`, or `None` for a literal string value.
fn expression_body(value: &str) -> Option<String> {
    let v = compact(value);
    v.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map(str::to_string)
}

/// Every call of `function(...)` in `text`, as the full call text, with quote-aware paren matching.
/// A call is only counted when the name is not the tail of a longer identifier.
fn calls_of(text: &str, function: &str) -> Vec<String> {
    let needle = format!("{function}(");
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(&needle) {
        let start = from + pos;
        from = start + needle.len();
        let preceded_by_ident =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if preceded_by_ident {
            continue;
        }
        if let Some(end) = matching_paren(text, start + needle.len() - 1) {
            found.push(text[start..=end].to_string());
        }
    }
    found
}

/// Index of the `)` that closes the `(` at `open`, skipping parentheses inside quoted literals.
fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_literal = false;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '\'' => in_literal = !in_literal,
            '(' if !in_literal => depth += 1,
            ')' if !in_literal => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Names used as `function('name')`, e.g. every parameter named in `parameters('x')`.
fn quoted_names(text: &str, function: &str) -> BTreeSet<String> {
    let needle = format!("{function}('");
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(pos) = rest.find(&needle) {
        rest = &rest[pos + needle.len()..];
        if let Some(end) = rest.find('\'') {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

/// The `resources` array (empty when missing, which other checks report).
fn resources(t: &Value) -> Vec<&Value> {
    t.get("resources")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// All resources of one type.
fn resources_of<'a>(t: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    resources(t)
        .into_iter()
        .filter(|r| r["type"] == resource_type)
        .collect()
}

/// The single resource of a type, or a problem saying how many there were.
fn only<'a>(t: &'a Value, resource_type: &str) -> Result<&'a Value, String> {
    match resources_of(t, resource_type).as_slice() {
        [one] => Ok(one),
        many => Err(format!(
            "expected exactly one {resource_type}, found {}",
            many.len()
        )),
    }
}

/// `resourceId('<type>', <name expression>)` for a resource of this template, compacted; this is how
/// `dependsOn`, `reference()` and role assignment names point at it.
fn resource_id_of(resource: &Value) -> Option<String> {
    let ty = resource["type"].as_str()?;
    let name = expression_body(resource["name"].as_str()?)?;
    Some(compact(&format!("resourceId('{ty}',{name})")))
}

/// `format('<type>/{0}', <name expression>)`, the relative scope form of an extension resource.
fn relative_scope_of(resource: &Value) -> Option<String> {
    let ty = resource["type"].as_str()?;
    let name = expression_body(resource["name"].as_str()?)?;
    Some(compact(&format!("format('{ty}/{{0}}',{name})")))
}

/// The compacted `resourceId(...)` texts a resource lists in `dependsOn`.
fn depends_on(resource: &Value) -> BTreeSet<String> {
    resource["dependsOn"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(expression_body)
                .collect()
        })
        .unwrap_or_default()
}

/// Every string in a JSON value (object keys included), each compacted on its own so that an
/// apostrophe in one description cannot upset the reading of another string.
fn all_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![compact(s)],
        Value::Array(items) => items.iter().flat_map(all_strings).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(compact(k)).chain(all_strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `resourceId(...)` targets of every `reference(...)` call in a JSON value.
fn reference_targets(value: &Value) -> BTreeSet<String> {
    all_strings(value)
        .iter()
        .flat_map(|s| calls_of(s, "reference"))
        .filter_map(|call| calls_of(&call, "resourceId").into_iter().next())
        .collect()
}

/// A template resource's display label for messages: its type and name expression.
fn label(resource: &Value) -> String {
    format!(
        "{} {}",
        resource["type"].as_str().unwrap_or("?"),
        resource["name"].as_str().unwrap_or("?")
    )
}

/// The site's app settings as name → value, with a problem for each duplicate or malformed entry.
fn app_settings(site: &Value) -> (BTreeMap<String, String>, Vec<String>) {
    let mut settings = BTreeMap::new();
    let mut problems = Vec::new();
    let Some(entries) = site
        .pointer("/properties/siteConfig/appSettings")
        .and_then(Value::as_array)
    else {
        return (
            settings,
            vec!["site has no properties.siteConfig.appSettings array".to_string()],
        );
    };
    for entry in entries {
        match (entry["name"].as_str(), entry["value"].as_str()) {
            (Some(name), Some(value)) => {
                if settings
                    .insert(name.to_string(), value.to_string())
                    .is_some()
                {
                    problems.push(format!("app setting {name} is set twice"));
                }
            }
            _ => problems.push(format!(
                "app setting entry without string name and value: {entry}"
            )),
        }
    }
    (settings, problems)
}

/// The `Microsoft.Web/sites/config` `appsettings` resource the Dedicated plan uses, as name → value.
fn dedicated_settings(t: &Value) -> Result<(&Value, BTreeMap<String, String>), String> {
    let config = only(t, TYPE_SITE_CONFIG)?;
    let map = config["properties"]
        .as_object()
        .ok_or("the Dedicated appsettings resource has no properties object")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Ok((config, map))
}

/// The resource whose `name` is `[parameters('<param>')]` among those of one type.
fn named<'a>(t: &'a Value, resource_type: &str, param: &str) -> Result<&'a Value, String> {
    let wanted = format!("[parameters('{param}')]");
    resources_of(t, resource_type)
        .into_iter()
        .find(|r| r["name"].as_str().map(compact).as_deref() == Some(wanted.as_str()))
        .ok_or_else(|| format!("no {resource_type} named parameters('{param}')"))
}

/// `resourceId` of a resource named `[parameters('<param>')]`.
fn id_of(t: &Value, resource_type: &str, param: &str) -> String {
    named(t, resource_type, param)
        .ok()
        .and_then(resource_id_of)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Identities and role assignments
// ---------------------------------------------------------------------------------------------

/// Who a role assignment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Principal {
    /// The data identity (user-assigned, AZURE_CLIENT_ID): Key Vault and the data account.
    Data,
    /// The host identity (user-assigned, AzureWebJobsStorage__clientId): the host's own storage.
    Host,
    /// A person or group given by the `deployerPrincipalId` parameter.
    Deployer,
}

/// What a role assignment is scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Vault,
    HostStorage,
    DataStorage,
}

/// The resource ids the role checks need, read from the template itself.
struct Ids {
    data_identity: String,
    host_identity: String,
    vault: Value,
    host_storage: Value,
    data_storage: Value,
}

impl Ids {
    fn from_template(t: &Value) -> Result<Ids, String> {
        let data_identity = named(t, TYPE_IDENTITY, "identityName")?;
        let host_identity = named(t, TYPE_IDENTITY, "hostIdentityName")?;
        if resources_of(t, TYPE_IDENTITY).len() != 2 {
            return Err("expected exactly two user-assigned identities (data, host)".into());
        }
        Ok(Ids {
            data_identity: resource_id_of(data_identity).ok_or("data identity has no name")?,
            host_identity: resource_id_of(host_identity).ok_or("host identity has no name")?,
            vault: only(t, TYPE_VAULT)?.clone(),
            host_storage: named(t, TYPE_STORAGE, "hostStorageAccountName")?.clone(),
            data_storage: named(t, TYPE_STORAGE, "dataStorageAccountName")?.clone(),
        })
    }

    /// The identity a `reference(<identity>…).<property>` expression reads, if it is one of ours.
    fn identity_property(&self, expr: &str, property: &str) -> Option<Principal> {
        let e = compact(expr);
        let reads = |id: &str| {
            e.starts_with(&format!("[reference({id}")) && e.ends_with(&format!(").{property}]"))
        };
        if reads(&self.data_identity) {
            Some(Principal::Data)
        } else if reads(&self.host_identity) {
            Some(Principal::Host)
        } else {
            None
        }
    }

    /// Which identity a `principalId` expression reads.
    fn principal_of(&self, principal_id: &str) -> Option<Principal> {
        if compact(principal_id) == "[parameters('deployerPrincipalId')]" {
            return Some(Principal::Deployer);
        }
        self.identity_property(principal_id, "principalId")
    }

    /// Which resource a `scope` expression designates (relative form or full resource id).
    fn target_of(&self, scope: &str) -> Option<Target> {
        let s = expression_body(scope)?;
        let matches = |r: &Value| {
            Some(&s) == relative_scope_of(r).as_ref() || Some(&s) == resource_id_of(r).as_ref()
        };
        [
            (&self.vault, Target::Vault),
            (&self.host_storage, Target::HostStorage),
            (&self.data_storage, Target::DataStorage),
        ]
        .into_iter()
        .find(|(r, _)| matches(r))
        .map(|(_, target)| target)
    }

    /// The resource id a target's scope must be created after.
    fn target_id(&self, target: Target) -> String {
        let r = match target {
            Target::Vault => &self.vault,
            Target::HostStorage => &self.host_storage,
            Target::DataStorage => &self.data_storage,
        };
        resource_id_of(r).unwrap_or_default()
    }

    /// The resource id a principal's identity must be created after, when it is a template resource.
    fn principal_resource_id(&self, principal: Principal) -> Option<&str> {
        match principal {
            Principal::Data => Some(&self.data_identity),
            Principal::Host => Some(&self.host_identity),
            Principal::Deployer => None,
        }
    }
}

/// One role assignment as the template states it.
#[derive(Debug)]
struct Assignment {
    role: &'static str,
    role_guid: &'static str,
    principal: Principal,
    target: Target,
    condition: Option<String>,
}

/// Reads a role assignment, or describes why it cannot be read.
fn parse_assignment(ids: &Ids, resource: &Value) -> Result<Assignment, String> {
    let what = label(resource);
    let role_id = resource
        .pointer("/properties/roleDefinitionId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (role, role_guid) = role_of(role_id).ok_or_else(|| {
        format!("{what}: roleDefinitionId {role_id:?} is not subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '<verified built-in GUID>')")
    })?;
    let principal_id = resource
        .pointer("/properties/principalId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let principal = ids
        .principal_of(principal_id)
        .ok_or_else(|| format!("{what} ({role}): principalId {principal_id:?} is neither the data identity's nor the host identity's principalId, nor deployerPrincipalId"))?;
    let scope = resource["scope"].as_str().unwrap_or("");
    let target = ids.target_of(scope).ok_or_else(|| {
        format!(
            "{what} ({role}): scope {scope:?} is neither the vault nor one of the storage accounts"
        )
    })?;
    let condition = resource["condition"].as_str().map(compact);
    Ok(Assignment {
        role,
        role_guid,
        principal,
        target,
        condition,
    })
}

/// The built-in role a `roleDefinitionId` expression names.
fn role_of(role_definition_id: &str) -> Option<(&'static str, &'static str)> {
    let expr = expression_body(role_definition_id)?;
    let guid = expr
        .strip_prefix("subscriptionResourceId('Microsoft.Authorization/roleDefinitions','")?
        .strip_suffix("')")?;
    BUILT_IN_ROLES.iter().find(|(_, g)| *g == guid).copied()
}

/// The identity the Functions host uses for AzureWebJobsStorage, from its app settings.
fn host_storage_identity(
    ids: &Ids,
    settings: &BTreeMap<String, String>,
) -> Result<Principal, String> {
    if settings
        .get("AzureWebJobsStorage__credential")
        .map(String::as_str)
        != Some("managedidentity")
    {
        return Err("AzureWebJobsStorage__credential must be managedidentity so the host's identity is explicit (without it the host falls back to DefaultAzureCredential, which follows AZURE_CLIENT_ID)".into());
    }
    let client_id = settings
        .get("AzureWebJobsStorage__clientId")
        .ok_or("AzureWebJobsStorage__clientId must name the host identity (the app has no system-assigned identity)")?;
    ids.identity_property(client_id, "clientId").ok_or_else(|| {
        format!("AzureWebJobsStorage__clientId {client_id:?} is not a template identity's clientId")
    })
}

/// The role assignments the identity plan calls for: (role, principal, target, parameter that gates
/// it or `None` when it is always deployed). `host` is the identity the host's settings name.
fn expected_assignments(
    host: Principal,
) -> Vec<(&'static str, Principal, Target, Option<&'static str>)> {
    vec![
        (
            "Key Vault Secrets User",
            Principal::Data,
            Target::Vault,
            None,
        ),
        (
            "Storage Blob Data Contributor",
            Principal::Data,
            Target::DataStorage,
            None,
        ),
        ("Storage Blob Data Owner", host, Target::HostStorage, None),
        (
            "Storage Table Data Contributor",
            host,
            Target::HostStorage,
            None,
        ),
        (
            "Key Vault Secrets Officer",
            Principal::Deployer,
            Target::Vault,
            Some("deployerPrincipalId"),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// The template is a resource-group deployment template whose names and references resolve.
fn check_well_formed(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !t["$schema"]
        .as_str()
        .is_some_and(|s| s.contains("deploymentTemplate.json"))
    {
        problems.push("$schema is not a resource-group deploymentTemplate.json schema".into());
    }
    if t["contentVersion"].as_str().is_none() {
        problems.push("contentVersion is missing".into());
    }
    let mut seen = BTreeSet::new();
    for r in resources(t) {
        for key in ["type", "apiVersion", "name"] {
            if r[key].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{}: {key} is missing", label(r)));
            }
        }
        if !seen.insert((
            r["type"].to_string(),
            compact(r["name"].as_str().unwrap_or("")),
        )) {
            problems.push(format!("{}: declared twice", label(r)));
        }
    }
    let strings = all_strings(t);
    let declared = |section: &str| -> BTreeSet<String> {
        t[section]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    for (function, section) in [("parameters", "parameters"), ("variables", "variables")] {
        let declared = declared(section);
        let used: BTreeSet<String> = strings
            .iter()
            .flat_map(|s| quoted_names(s, function))
            .collect();
        for name in used.difference(&declared) {
            problems.push(format!("{function}('{name}') is used but not declared"));
        }
        for unused in declared.difference(&used) {
            problems.push(format!("{section}.{unused} is declared but never used"));
        }
    }
    problems
}

/// The ids a resource can be named by in `dependsOn`: `resourceId('<type>', <name>)`, and for a
/// child named `format('{0}/default/{1}', a, b)`, also `resourceId('<type>', a, 'default', b)`.
fn ids_of(resource: &Value) -> Vec<String> {
    let mut ids: Vec<String> = resource_id_of(resource).into_iter().collect();
    let ty = resource["type"].as_str().unwrap_or_default();
    let name = resource["name"].as_str().and_then(expression_body);
    if let Some(args) = name
        .as_deref()
        .and_then(|n| n.strip_prefix("format('{0}/default/{1}',"))
        .and_then(|n| n.strip_suffix(')'))
        && let Some((a, b)) = split_top_level_comma(args)
    {
        ids.push(format!("resourceId('{ty}',{a},'default',{b})"));
    }
    ids
}

/// `a, b` split at the one comma outside parentheses and quotes.
fn split_top_level_comma(args: &str) -> Option<(String, String)> {
    let (mut depth, mut literal) = (0i32, false);
    for (i, c) in args.char_indices() {
        match c {
            '\'' => literal = !literal,
            '(' if !literal => depth += 1,
            ')' if !literal => depth -= 1,
            ',' if !literal && depth == 0 => {
                return Some((args[..i].to_string(), args[i + 1..].to_string()));
            }
            _ => {}
        }
    }
    None
}

/// Every resource waits (`dependsOn`) for each template resource it `reference()`s, and every
/// `dependsOn` entry names a resource of this template.
fn check_dependencies(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let declared: BTreeSet<String> = resources(t).into_iter().flat_map(ids_of).collect();
    for r in resources(t) {
        let waits_for = depends_on(r);
        let mut body = r.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("dependsOn");
        }
        for target in reference_targets(&body) {
            if declared.contains(&target) && !waits_for.contains(&target) {
                problems.push(format!(
                    "{}: reference({target}) without dependsOn {target}",
                    label(r)
                ));
            }
        }
        for d in &waits_for {
            if !declared.contains(d) {
                problems.push(format!(
                    "{}: dependsOn {d} is not a resource of this template",
                    label(r)
                ));
            }
        }
    }
    if let Ok(site) = only(t, TYPE_SITE)
        && let Ok(plan) = only(t, TYPE_PLAN)
    {
        let plan_id = resource_id_of(plan).unwrap_or_default();
        let farm = site
            .pointer("/properties/serverFarmId")
            .and_then(Value::as_str)
            .and_then(expression_body);
        if farm.as_deref() != Some(plan_id.as_str()) {
            problems.push(format!(
                "site serverFarmId {farm:?} is not the plan {plan_id}"
            ));
        }
        if !depends_on(site).contains(&plan_id) {
            problems.push(format!("site does not dependsOn the plan {plan_id}"));
        }
    }
    problems
}

/// Every roleDefinitionId is a verified built-in GUID, in the documented expression form.
fn check_role_definitions(t: &Value) -> Vec<String> {
    let assignments = resources_of(t, TYPE_ROLE_ASSIGNMENT);
    let mut problems: Vec<String> = assignments
        .iter()
        .filter_map(|r| {
            let id = r
                .pointer("/properties/roleDefinitionId")
                .and_then(Value::as_str)
                .unwrap_or("");
            role_of(id).is_none().then(|| {
                format!(
                    "{}: roleDefinitionId {id:?} is not a verified built-in role GUID",
                    label(r)
                )
            })
        })
        .collect();
    if assignments.is_empty() {
        problems.push("template has no role assignments".into());
    }
    problems
}

/// Each role assignment gives the planned role to the planned identity on the planned resource:
/// nothing missing, nothing extra, optional ones gated by their parameter.
fn check_role_plan(t: &Value) -> Vec<String> {
    let ids = match Ids::from_template(t) {
        Ok(ids) => ids,
        Err(e) => return vec![e],
    };
    let Ok(site) = only(t, TYPE_SITE) else {
        return vec!["no single site".into()];
    };
    let (settings, mut problems) = app_settings(site);
    let host = match host_storage_identity(&ids, &settings) {
        Ok(p) => p,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    let mut expected = expected_assignments(host);
    for r in resources_of(t, TYPE_ROLE_ASSIGNMENT) {
        let a = match parse_assignment(&ids, r) {
            Ok(a) => a,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let Some(i) = expected
            .iter()
            .position(|(role, p, tgt, _)| *role == a.role && *p == a.principal && *tgt == a.target)
        else {
            problems.push(format!(
                "unexpected role assignment: {} for {:?} on {:?}",
                a.role, a.principal, a.target
            ));
            continue;
        };
        let (_, _, _, gate) = expected.remove(i);
        match (gate, &a.condition) {
            (None, Some(c)) => problems.push(format!(
                "{} for {:?} must always deploy but has condition {c}",
                a.role, a.principal
            )),
            (Some(param), None) => problems.push(format!(
                "{} for {:?} must be gated by parameters('{param}')",
                a.role, a.principal
            )),
            (Some(param), Some(c)) if !c.contains(&format!("parameters('{param}')")) => {
                problems.push(format!(
                    "{} for {:?}: condition {c} does not test parameters('{param}')",
                    a.role, a.principal
                ));
            }
            _ => {}
        }
    }
    for (role, p, tgt, _) in expected {
        problems.push(format!(
            "missing role assignment: {role} for {p:?} on {tgt:?}"
        ));
    }
    problems
}

/// Each role assignment waits for its scope and its identity, has a deterministic guid() name built
/// from scope, principal and role, and the principal type the platform needs for new identities.
fn check_assignment_wiring(t: &Value) -> Vec<String> {
    let ids = match Ids::from_template(t) {
        Ok(ids) => ids,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for r in resources_of(t, TYPE_ROLE_ASSIGNMENT) {
        let Ok(a) = parse_assignment(&ids, r) else {
            continue; // check_role_plan reports unreadable assignments
        };
        let what = format!("{} for {:?} on {:?}", a.role, a.principal, a.target);
        let waits_for = depends_on(r);
        let scope_id = ids.target_id(a.target);
        if !waits_for.contains(&scope_id) {
            problems.push(format!("{what}: missing dependsOn {scope_id}"));
        }
        let principal_id = ids.principal_resource_id(a.principal);
        if let Some(pid) = principal_id
            && !waits_for.contains(pid)
        {
            problems.push(format!("{what}: missing dependsOn {pid}"));
        }
        let name = compact(r["name"].as_str().unwrap_or(""));
        let deterministic = name.starts_with("[guid(")
            && !["newGuid", "utcNow", "reference("]
                .iter()
                .any(|f| name.contains(f));
        let principal_part = principal_id
            .map(str::to_string)
            .unwrap_or_else(|| "parameters('deployerPrincipalId')".into());
        for part in [scope_id.as_str(), principal_part.as_str(), a.role_guid] {
            if !name.contains(part) {
                problems.push(format!("{what}: name {name} does not include {part}"));
            }
        }
        if !deterministic {
            problems.push(format!("{what}: name {name} is not a deterministic guid()"));
        }
        if !names.insert(name.clone()) {
            problems.push(format!("{what}: name {name} is used by another assignment"));
        }
        let principal_type = r
            .pointer("/properties/principalType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let wanted = if a.principal == Principal::Deployer {
            "[parameters('deployerPrincipalType')]"
        } else {
            "ServicePrincipal"
        };
        if principal_type != wanted {
            problems.push(format!(
                "{what}: principalType {principal_type:?}, expected {wanted:?}"
            ));
        }
    }
    problems
}

/// Both storage accounts take Entra ID only: no shared keys, no anonymous blobs, TLS 1.2, HTTPS.
fn check_storage(t: &Value) -> Vec<String> {
    let accounts = resources_of(t, TYPE_STORAGE);
    let mut problems = Vec::new();
    if accounts.len() != 2 {
        problems.push(format!(
            "expected two storage accounts (host, data), found {}",
            accounts.len()
        ));
    }
    for s in accounts {
        let what = label(s);
        let mut expect = |pointer: &str, wanted: Value| {
            if s.pointer(pointer) != Some(&wanted) {
                problems.push(format!(
                    "{what}: {pointer} is {:?}, expected {wanted}",
                    s.pointer(pointer)
                ));
            }
        };
        expect("/kind", json!("StorageV2"));
        expect("/sku/name", json!("Standard_LRS"));
        expect("/properties/allowSharedKeyAccess", json!(false));
        expect("/properties/allowBlobPublicAccess", json!(false));
        expect("/properties/minimumTlsVersion", json!("TLS1_2"));
        expect("/properties/supportsHttpsTrafficOnly", json!(true));
    }
    for c in resources_of(t, TYPE_CONTAINER) {
        if c.pointer("/properties/publicAccess") != Some(&json!("None")) {
            problems.push(format!("{}: publicAccess must be None", label(c)));
        }
    }
    problems
}

/// The vault authorizes data access with Azure RBAC in this subscription's tenant, soft delete on.
fn check_vault(t: &Value) -> Vec<String> {
    let v = match only(t, TYPE_VAULT) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut expect = |pointer: &str, wanted: Value| {
        if v.pointer(pointer) != Some(&wanted) {
            problems.push(format!(
                "vault {pointer} is {:?}, expected {wanted}",
                v.pointer(pointer)
            ));
        }
    };
    expect("/properties/enableRbacAuthorization", json!(true));
    expect("/properties/tenantId", json!("[subscription().tenantId]"));
    expect("/properties/enableSoftDelete", json!(true));
    if v.pointer("/properties/accessPolicies")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        problems.push(
            "vault has access policies; RBAC mode ignores them and they hide the real grants"
                .into(),
        );
    }
    problems
}

/// The expression that picks the Flex Consumption value, else the Dedicated one.
fn flex_or(flex: &str, dedicated: &str) -> Value {
    json!(format!("[if(variables('isFlex'), {flex}, {dedicated})]"))
}

/// The site is a Linux function app on a Linux plan, running the custom handler, with both
/// identities (and no other) attached, HTTPS only and FTP off; the Dedicated-only site settings
/// apply only there.
fn check_site(t: &Value) -> Vec<String> {
    let (site, plan) = match (only(t, TYPE_SITE), only(t, TYPE_PLAN)) {
        (Ok(s), Ok(p)) => (s, p),
        (s, p) => return [s.err(), p.err()].into_iter().flatten().collect(),
    };
    let mut problems = Vec::new();
    let mut expect = |what: &str, actual: Option<&Value>, wanted: Value| {
        if actual.map(|v| {
            v.as_str()
                .map(compact)
                .map(Value::from)
                .unwrap_or(v.clone())
        }) != Some(
            wanted
                .as_str()
                .map(compact)
                .map(Value::from)
                .unwrap_or(wanted.clone()),
        ) {
            problems.push(format!("{what} is {actual:?}, expected {wanted}"));
        }
    };
    expect(
        "plan properties.reserved (Linux)",
        plan.pointer("/properties/reserved"),
        json!(true),
    );
    expect("site kind", site.get("kind"), json!("functionapp,linux"));
    expect(
        "site properties.reserved",
        site.pointer("/properties/reserved"),
        json!(true),
    );
    expect(
        "site httpsOnly",
        site.pointer("/properties/httpsOnly"),
        json!(true),
    );
    expect(
        "site ftpsState",
        site.pointer("/properties/siteConfig/ftpsState"),
        json!("Disabled"),
    );
    expect(
        "site minTlsVersion",
        site.pointer("/properties/siteConfig/minTlsVersion"),
        json!("1.2"),
    );
    expect(
        "site identity type",
        site.pointer("/identity/type"),
        json!("UserAssigned"),
    );
    // Always On keeps the timer firing on a Dedicated plan; Flex has no such setting.
    expect(
        "site siteConfig.alwaysOn",
        site.pointer("/properties/siteConfig/alwaysOn"),
        flex_or("null()", "true()"),
    );
    // "" is the Custom Handler stack's linuxFxVersion on Dedicated; Flex takes functionAppConfig.
    expect(
        "site siteConfig.linuxFxVersion",
        site.pointer("/properties/siteConfig/linuxFxVersion"),
        flex_or("null()", "''"),
    );
    let wanted: BTreeSet<String> = ["identityName", "hostIdentityName"]
        .iter()
        .map(|p| id_of(t, TYPE_IDENTITY, p))
        .collect();
    let attached: BTreeSet<String> = site
        .pointer("/identity/userAssignedIdentities")
        .and_then(Value::as_object)
        .map(|o| o.keys().filter_map(|k| expression_body(k)).collect())
        .unwrap_or_default();
    if attached != wanted {
        problems.push(format!(
            "site userAssignedIdentities {attached:?}, expected exactly {wanted:?}"
        ));
    }
    problems
}

/// Flex Consumption is the default: FC1, runtime custom 1.0, the smallest instance memory by
/// default, a maximum instance count parameter, and the package in an `app-package-<app>` blob
/// container of the host account, read with the host identity, which holds a Blob role there.
fn check_flex(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let param = |name: &str| t.pointer(&format!("/parameters/{name}")).cloned();
    fn expect(problems: &mut Vec<String>, what: &str, actual: Option<Value>, wanted: Value) {
        let norm = |v: &Value| {
            v.as_str()
                .map(compact)
                .map(Value::from)
                .unwrap_or(v.clone())
        };
        if actual.as_ref().map(norm) != Some(norm(&wanted)) {
            problems.push(format!("{what} is {actual:?}, expected {wanted}"));
        }
    }
    expect(
        &mut problems,
        "parameters.hostingPlan.defaultValue",
        param("hostingPlan").map(|p| p["defaultValue"].clone()),
        json!("FlexConsumption"),
    );
    expect(
        &mut problems,
        "parameters.hostingPlan.allowedValues",
        param("hostingPlan").map(|p| p["allowedValues"].clone()),
        json!(["FlexConsumption", "Dedicated"]),
    );
    expect(
        &mut problems,
        "variables.isFlex",
        t.pointer("/variables/isFlex").cloned(),
        json!("[equals(parameters('hostingPlan'), 'FlexConsumption')]"),
    );
    let plan = only(t, TYPE_PLAN).ok();
    expect(
        &mut problems,
        "plan sku.name",
        plan.and_then(|p| p.pointer("/sku/name").cloned()),
        flex_or("'FC1'", "parameters('planSku')"),
    );
    expect(
        &mut problems,
        "plan sku.tier",
        plan.and_then(|p| p.pointer("/sku/tier").cloned()),
        flex_or("'FlexConsumption'", "null()"),
    );
    let site = only(t, TYPE_SITE).ok();
    expect(
        &mut problems,
        "site properties.functionAppConfig",
        site.and_then(|s| s.pointer("/properties/functionAppConfig").cloned()),
        flex_or("variables('flexFunctionAppConfig')", "null()"),
    );
    let config = t
        .pointer("/variables/flexFunctionAppConfig")
        .cloned()
        .unwrap_or_default();
    expect(
        &mut problems,
        "flexFunctionAppConfig.runtime",
        config.get("runtime").cloned(),
        json!({"name": "custom", "version": "1.0"}),
    );
    expect(
        &mut problems,
        "flexFunctionAppConfig.scaleAndConcurrency.instanceMemoryMB",
        config
            .pointer("/scaleAndConcurrency/instanceMemoryMB")
            .cloned(),
        json!("[parameters('instanceMemoryMB')]"),
    );
    expect(
        &mut problems,
        "flexFunctionAppConfig.scaleAndConcurrency.maximumInstanceCount",
        config
            .pointer("/scaleAndConcurrency/maximumInstanceCount")
            .cloned(),
        json!("[parameters('maximumInstanceCount')]"),
    );
    // The instance sizes the platform offers custom handlers on FC1 (the Functions stacks data
    // Core Tools ships: 512, 2048, 4096) and its instance-count range (40 to 1000).
    let memory = param("instanceMemoryMB").unwrap_or_default();
    expect(
        &mut problems,
        "parameters.instanceMemoryMB.allowedValues",
        Some(memory["allowedValues"].clone()),
        json!([512, 2048, 4096]),
    );
    expect(
        &mut problems,
        "parameters.instanceMemoryMB.defaultValue (the smallest size)",
        Some(memory["defaultValue"].clone()),
        json!(512),
    );
    let count = param("maximumInstanceCount").unwrap_or_default();
    let in_range = |v: &Value| v.as_i64().is_some_and(|n| (40..=1000).contains(&n));
    if !(in_range(&count["defaultValue"])
        && count["minValue"] == json!(40)
        && count["maxValue"] == json!(1000))
    {
        problems.push(format!(
            "parameters.maximumInstanceCount must default within, and be bounded by, 40..=1000: {count}"
        ));
    }
    let storage = config
        .pointer("/deployment/storage")
        .cloned()
        .unwrap_or_default();
    expect(
        &mut problems,
        "deployment storage type",
        storage.get("type").cloned(),
        json!("blobContainer"),
    );
    expect(
        &mut problems,
        "deployment storage value",
        storage.get("value").cloned(),
        json!(
            "[format('https://{0}.blob.{1}/{2}', parameters('hostStorageAccountName'), environment().suffixes.storage, variables('deploymentContainerName'))]"
        ),
    );
    expect(
        &mut problems,
        "variables.deploymentContainerName",
        t.pointer("/variables/deploymentContainerName").cloned(),
        json!("[format('app-package-{0}', toLower(parameters('appName')))]"),
    );
    let host_identity = id_of(t, TYPE_IDENTITY, "hostIdentityName");
    expect(
        &mut problems,
        "deployment storage authentication type",
        storage.pointer("/authentication/type").cloned(),
        json!("UserAssignedIdentity"),
    );
    expect(
        &mut problems,
        "deployment storage authentication userAssignedIdentityResourceId",
        storage
            .pointer("/authentication/userAssignedIdentityResourceId")
            .cloned(),
        json!(format!("[{host_identity}]")),
    );
    let container = resources_of(t, TYPE_CONTAINER).into_iter().find(|c| {
        c["name"].as_str().map(compact).as_deref()
            == Some("[format('{0}/default/{1}',parameters('hostStorageAccountName'),variables('deploymentContainerName'))]")
    });
    match container {
        None => problems.push("no deployment container in the host storage account".into()),
        Some(c) => expect(
            &mut problems,
            "deployment container condition",
            c.get("condition").cloned(),
            json!("[variables('isFlex')]"),
        ),
    }
    // The identity that reads the package must hold a Blob role on the account that holds it.
    if let Ok(ids) = Ids::from_template(t) {
        let holds_blob_role = resources_of(t, TYPE_ROLE_ASSIGNMENT).into_iter().any(|r| {
            parse_assignment(&ids, r).is_ok_and(|a| {
                a.principal == Principal::Host
                    && a.target == Target::HostStorage
                    && a.role.starts_with("Storage Blob Data")
                    && a.condition.is_none()
            })
        });
        if !holds_blob_role {
            problems.push(
                "the deployment storage identity holds no Blob role on the host storage account"
                    .into(),
            );
        }
    }
    problems
}

/// App settings Flex Consumption refuses or deprecates (Microsoft's "Flex Consumption plan
/// deprecations" list in the Functions app settings reference): the runtime and scale move to
/// `functionAppConfig`, and there is no content share or run-from-package setting.
const FLEX_REFUSED_SETTINGS: &[&str] = &[
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_SHARED_MEMORY_DATA_TRANSFER_ENABLED",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "SCALE_CONTROLLER_SCALING_ENABLED",
    "FUNCTION_APP_EDIT_MODE",
    "PYTHON_THREADPOOL_THREAD_COUNT",
    "DOCKER_REGISTRY_SERVER_URL",
    "DOCKER_REGISTRY_SERVER_USERNAME",
    "DOCKER_REGISTRY_SERVER_PASSWORD",
];

/// The settings only the Dedicated plan gets, through its conditional appsettings resource.
const DEDICATED_ONLY_SETTINGS: &[(&str, &str)] = &[
    ("FUNCTIONS_EXTENSION_VERSION", "~4"),
    ("FUNCTIONS_WORKER_RUNTIME", "custom"),
    ("WEBSITE_RUN_FROM_PACKAGE", "1"),
];

/// The site's settings (the ones Flex gets) carry nothing Flex refuses; the Dedicated plan's
/// appsettings resource deploys only there and is exactly the site's settings plus the runtime
/// and run-from-package settings Dedicated needs.
fn check_plan_settings(t: &Value) -> Vec<String> {
    let Ok(site) = only(t, TYPE_SITE) else {
        return vec!["no single site".into()];
    };
    let (settings, mut problems) = app_settings(site);
    for name in settings.keys() {
        if FLEX_REFUSED_SETTINGS.contains(&name.as_str()) {
            problems.push(format!(
                "site app setting {name} is one Flex Consumption refuses or deprecates; Dedicated-only settings belong in the conditional appsettings resource"
            ));
        }
    }
    match dedicated_settings(t) {
        Err(e) => problems.push(e),
        Ok((config, dedicated)) => {
            if config["condition"].as_str().map(compact).as_deref()
                != Some("[not(variables('isFlex'))]")
            {
                problems.push(
                    "the Dedicated appsettings resource must have condition [not(variables('isFlex'))]"
                        .into(),
                );
            }
            let mut wanted = settings.clone();
            for (name, value) in DEDICATED_ONLY_SETTINGS {
                wanted.insert(name.to_string(), value.to_string());
            }
            let norm = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                m.iter().map(|(k, v)| (k.clone(), compact(v))).collect()
            };
            if norm(&dedicated) != norm(&wanted) {
                let missing: Vec<_> = wanted
                    .iter()
                    .filter(|(k, v)| dedicated.get(*k).map(|d| compact(d)) != Some(compact(v)))
                    .map(|(k, _)| k.clone())
                    .collect();
                let extra: Vec<_> = dedicated
                    .keys()
                    .filter(|k| !wanted.contains_key(*k))
                    .cloned()
                    .collect();
                problems.push(format!(
                    "the Dedicated appsettings differ from the site's settings plus {DEDICATED_ONLY_SETTINGS:?}: missing or different {missing:?}, extra {extra:?}"
                ));
            }
            let site_id = only(t, TYPE_SITE)
                .ok()
                .and_then(resource_id_of)
                .unwrap_or_default();
            if !depends_on(config).contains(&site_id) {
                problems.push(format!(
                    "the Dedicated appsettings resource does not dependsOn {site_id}"
                ));
            }
        }
    }
    problems
}

/// The Functions host reaches its storage with an identity, and no key material appears anywhere.
fn check_no_keys(t: &Value, raw_text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lower = raw_text.to_ascii_lowercase();
    for forbidden in [
        "listkeys",
        "accountkey",
        "listaccountsas",
        "listservicesas",
        "sharedaccesssignature",
        "defaultendpointsprotocol",
        "storageaccountconnectionstring",
    ] {
        if lower.contains(forbidden) {
            problems.push(format!(
                "template text contains {forbidden:?}: key material or a connection string"
            ));
        }
    }
    let Ok(site) = only(t, TYPE_SITE) else {
        problems.push("no single site".into());
        return problems;
    };
    let (settings, setting_problems) = app_settings(site);
    problems.extend(setting_problems);
    let dedicated = dedicated_settings(t).map(|(_, s)| s).unwrap_or_default();
    for set in [&settings, &dedicated] {
        if set.contains_key("AzureWebJobsStorage") {
            problems.push("AzureWebJobsStorage (a connection string) is set; use the AzureWebJobsStorage__* identity settings".into());
        }
        if set
            .keys()
            .any(|k| k.starts_with("WEBSITE_CONTENTAZUREFILE"))
        {
            problems.push("WEBSITE_CONTENTAZUREFILECONNECTIONSTRING needs a shared key; neither plan uses Azure Files".into());
        }
    }
    expect_setting(&mut problems, &dedicated, "FUNCTIONS_WORKER_RUNTIME", |v| {
        v == "custom"
    });
    expect_setting(
        &mut problems,
        &dedicated,
        "FUNCTIONS_EXTENSION_VERSION",
        |v| v == "~4",
    );
    expect_setting(
        &mut problems,
        &settings,
        "AzureWebJobsStorage__accountName",
        |v| compact(v) == "[parameters('hostStorageAccountName')]",
    );
    if let Ok(ids) = Ids::from_template(t) {
        match host_storage_identity(&ids, &settings) {
            Err(e) => problems.push(e),
            Ok(Principal::Host) => {}
            Ok(other) => problems.push(format!(
                "AzureWebJobsStorage__clientId names the {other:?} identity, not the host identity"
            )),
        }
    }
    problems
}

/// Records a problem unless the setting exists and its value satisfies `ok`.
fn expect_setting(
    problems: &mut Vec<String>,
    settings: &BTreeMap<String, String>,
    name: &str,
    ok: impl Fn(&str) -> bool,
) {
    match settings.get(name) {
        Some(v) if ok(v) => {}
        Some(v) => problems.push(format!("app setting {name} has unexpected value {v:?}")),
        None => problems.push(format!("app setting {name} is missing")),
    }
}

/// Every setting the handler needs in Azure is set, and the resource-derived ones read the right
/// resource property: the app's blobs live in the data account, never the host's.
fn check_handler_settings(t: &Value) -> Vec<String> {
    let Ok(site) = only(t, TYPE_SITE) else {
        return vec!["no single site".into()];
    };
    let (settings, mut problems) = app_settings(site);
    for s in APP_SETTINGS.iter().filter(|s| s.deployed) {
        match settings.get(s.name) {
            Some(v) if !v.trim().is_empty() => {}
            Some(_) => problems.push(format!("app setting {} ({}) is empty", s.name, s.purpose)),
            None => problems.push(format!("app setting {} ({}) is missing", s.name, s.purpose)),
        }
    }
    let reads = |id: String, property: &'static str| {
        move |v: &str| {
            let v = compact(v);
            v.starts_with(&format!("[reference({id}")) && v.ends_with(&format!("{property}]"))
        }
    };
    expect_setting(
        &mut problems,
        &settings,
        "KEY_VAULT_URL",
        reads(
            only(t, TYPE_VAULT)
                .ok()
                .and_then(resource_id_of)
                .unwrap_or_default(),
            ").vaultUri",
        ),
    );
    expect_setting(
        &mut problems,
        &settings,
        "STORAGE_BLOB_URL",
        reads(
            id_of(t, TYPE_STORAGE, "dataStorageAccountName"),
            ").primaryEndpoints.blob",
        ),
    );
    expect_setting(
        &mut problems,
        &settings,
        "AZURE_CLIENT_ID",
        reads(id_of(t, TYPE_IDENTITY, "identityName"), ").clientId"),
    );
    expect_setting(&mut problems, &settings, "ALLOWED_CONTAINERS", |v| {
        compact(v) == "[parameters('allowedContainers')]"
    });
    // The container the blob functions are allowed by default exists in the data account.
    if t.pointer("/parameters/allowedContainers/defaultValue")
        != Some(&json!("[parameters('dataContainerName')]"))
    {
        problems.push("parameters.allowedContainers must default to dataContainerName, the container the template creates".into());
    }
    let data_container = "[format('{0}/default/{1}',parameters('dataStorageAccountName'),parameters('dataContainerName'))]";
    if !resources_of(t, TYPE_CONTAINER).iter().any(|c| {
        c["name"].as_str().map(compact).as_deref() == Some(data_container)
            && c.get("condition").is_none()
    }) {
        problems.push(
            "no data container parameters('dataContainerName') in the data storage account".into(),
        );
    }
    problems
}

/// The RefreshTokens schedule (the default of the parameter feeding TOKEN_REFRESH_SCHEDULE, or the
/// literal value) is a six-field NCRONTAB expression.
fn check_timer_schedule(t: &Value) -> Vec<String> {
    let Ok(site) = only(t, TYPE_SITE) else {
        return vec!["no single site".into()];
    };
    let (settings, mut problems) = app_settings(site);
    let Some(value) = settings.get("TOKEN_REFRESH_SCHEDULE") else {
        problems.push("app setting TOKEN_REFRESH_SCHEDULE is missing".into());
        return problems;
    };
    let schedule = match quoted_names(&compact(value), "parameters")
        .into_iter()
        .next()
    {
        Some(param) => t
            .pointer(&format!("/parameters/{param}/defaultValue"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        None => value.clone(),
    };
    if schedule.split_whitespace().count() != 6 {
        problems.push(format!(
            "TOKEN_REFRESH_SCHEDULE default {schedule:?} is not six-field NCRONTAB"
        ));
    }
    if schedule != "0 */5 * * * *" {
        problems.push(format!(
            "TOKEN_REFRESH_SCHEDULE default {schedule:?}, the plan says \"0 */5 * * * *\""
        ));
    }
    problems
}

/// The HTTP functions of the app, with their routes: from the function folders when present
/// (route, else the folder name, as the host does), else the known list with default routes.
fn http_function_routes(root: &Path) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let file = entry.path().join("function.json");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            let bindings = json["bindings"].as_array().cloned().unwrap_or_default();
            if let Some(trigger) = bindings.iter().find(|b| {
                b["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("httpTrigger"))
            }) {
                let route = trigger["route"].as_str().unwrap_or(&name).to_string();
                routes.insert(name, route);
            }
        }
    }
    if routes.is_empty() {
        routes = HTTP_FUNCTIONS
            .iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect();
    }
    routes
}

/// The route prefix from host.json (`extensions.http.routePrefix`, default `api`).
fn route_prefix(root: &Path) -> String {
    std::fs::read_to_string(root.join("host.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|h| {
            h.pointer("/extensions/http/routePrefix")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "api".to_string())
}

/// The outputs give the app name, its https URL and one URL per HTTP function whose route matches
/// the function's own route.
fn check_outputs(t: &Value, routes: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let site_id = only(t, TYPE_SITE)
        .ok()
        .and_then(resource_id_of)
        .unwrap_or_default();
    let host = format!("reference({site_id}");
    let out = |name: &str| t.pointer(&format!("/outputs/{name}/value")).cloned();
    if out("functionAppName").is_none() {
        problems.push("output functionAppName is missing".into());
    }
    match out("functionAppUrl").and_then(|v| v.as_str().map(compact)) {
        Some(v)
            if v.starts_with("[format('https://{0}'")
                && v.contains(&host)
                && v.contains(".defaultHostName") => {}
        other => problems.push(format!(
            "output functionAppUrl {other:?} is not https://<site defaultHostName>"
        )),
    }
    if t.pointer("/variables/routePrefix").and_then(Value::as_str) != Some(prefix) {
        problems.push(format!(
            "variables.routePrefix is not the host's route prefix {prefix:?}"
        ));
    }
    let urls = out("functionUrls")
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let listed: BTreeSet<&String> = urls.keys().collect();
    let wanted: BTreeSet<&String> = routes.keys().collect();
    if listed != wanted {
        problems.push(format!(
            "output functionUrls lists {listed:?}, the app's HTTP functions are {wanted:?}"
        ));
    }
    for (function, route) in routes {
        let variable = t
            .pointer(&format!("/variables/functionRoutes/{function}"))
            .and_then(Value::as_str);
        if variable != Some(route.as_str()) {
            problems.push(format!("variables.functionRoutes.{function} is {variable:?}, the function's route is {route:?}"));
        }
        let url = urls
            .get(function)
            .and_then(Value::as_str)
            .map(compact)
            .unwrap_or_default();
        let uses_route = url.contains(&format!("variables('functionRoutes').{function}"))
            && url.contains("variables('routePrefix')");
        if !(url.starts_with("[format('https://") && url.contains(&host) && uses_route) {
            problems.push(format!(
                "output functionUrls.{function} {url:?} is not https://<host>/<prefix>/<its route>"
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The real template passes every check
// ---------------------------------------------------------------------------------------------

/// Every check on the real template, one case per check: all of them run before the first
/// failure is reported, and each failure names its check.
#[test]
fn the_real_template_passes_every_check() {
    let t = template();
    let root = package_root();
    let results = [
        ("check_well_formed", check_well_formed(&t)),
        ("check_dependencies", check_dependencies(&t)),
        ("check_role_definitions", check_role_definitions(&t)),
        ("check_role_plan", check_role_plan(&t)),
        ("check_assignment_wiring", check_assignment_wiring(&t)),
        ("check_storage", check_storage(&t)),
        ("check_vault", check_vault(&t)),
        ("check_site", check_site(&t)),
        ("check_flex", check_flex(&t)),
        ("check_plan_settings", check_plan_settings(&t)),
        ("check_handler_settings", check_handler_settings(&t)),
        ("check_timer_schedule", check_timer_schedule(&t)),
        ("check_no_keys", check_no_keys(&t, &template_text())),
        (
            "check_outputs",
            check_outputs(&t, &http_function_routes(&root), &route_prefix(&root)),
        ),
    ];
    for (check, problems) in &results {
        assert_no_problems(check, problems);
    }
}

/// The verified table itself: unique names, unique GUIDs, GUID shape.
#[test]
fn built_in_role_table_is_consistent() {
    let names: BTreeSet<_> = BUILT_IN_ROLES.iter().map(|(n, _)| n).collect();
    let guids: BTreeSet<_> = BUILT_IN_ROLES.iter().map(|(_, g)| g).collect();
    assert_eq!(
        names.len(),
        BUILT_IN_ROLES.len(),
        "duplicate role name in BUILT_IN_ROLES"
    );
    assert_eq!(
        guids.len(),
        BUILT_IN_ROLES.len(),
        "duplicate GUID in BUILT_IN_ROLES"
    );
    for (name, guid) in BUILT_IN_ROLES {
        let groups: Vec<usize> = guid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{name}: {guid} is not a GUID");
        assert!(
            guid.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{name}: {guid} is not lower-case hex"
        );
    }
}

/// The role definitions the plan needs are all in the verified table.
#[test]
fn planned_roles_are_in_the_verified_table() {
    for (role, ..) in expected_assignments(Principal::Host) {
        assert!(
            BUILT_IN_ROLES.iter().any(|(n, _)| *n == role),
            "{role} is planned but not in BUILT_IN_ROLES"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Each check catches the breakage it exists for
// ---------------------------------------------------------------------------------------------

/// [`assert_detects`] with the check named by its own call: `detects!(check_x(&t), "needle")`.
macro_rules! detects {
    ($check:ident($($arg:expr),* $(,)?), $needle:expr $(,)?) => {
        assert_detects(stringify!($check), &$check($($arg),*), $needle)
    };
}

/// Asserts that the handler-settings check names `setting` once the template sets it to `value`.
fn assert_setting_value_caught(setting: &str, value: &str) {
    let t = broken(|t| set_app_setting(t, setting, Some(value)));
    detects!(check_handler_settings(&t), setting);
}

/// A copy of the template whose role assignment of `guid` to `principal_hint` is changed.
fn assignment_broken(guid: &str, principal_hint: &str, change: impl FnOnce(&mut Value)) -> Value {
    broken(|t| {
        let i = assignment_index(t, guid, principal_hint);
        change(&mut t["resources"][i]);
    })
}

/// A copy of the template with one change applied.
fn broken(change: impl FnOnce(&mut Value)) -> Value {
    let mut t = template();
    change(&mut t);
    t
}

/// The index in `resources` of the role assignment whose roleDefinitionId names `guid` and whose
/// principalId mentions `principal_hint`.
fn assignment_index(t: &Value, guid: &str, principal_hint: &str) -> usize {
    resources(t)
        .iter()
        .position(|r| {
            r["type"] == TYPE_ROLE_ASSIGNMENT
                && r.pointer("/properties/roleDefinitionId")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(guid))
                && r.pointer("/properties/principalId")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(principal_hint))
        })
        .unwrap_or_else(|| {
            panic!("no assignment with role {guid} for a principal mentioning {principal_hint}")
        })
}

/// The index in `resources` of the single resource of a type.
fn resource_index(t: &Value, resource_type: &str) -> usize {
    resources(t)
        .iter()
        .position(|r| r["type"] == resource_type)
        .unwrap_or_else(|| panic!("no {resource_type}"))
}

/// Replaces one app setting's value, or removes the setting when `value` is `None`.
fn set_app_setting(t: &mut Value, name: &str, value: Option<&str>) {
    let site = resource_index(t, TYPE_SITE);
    let settings = t["resources"][site]["properties"]["siteConfig"]["appSettings"]
        .as_array_mut()
        .expect("appSettings");
    let existing = settings.iter().position(|s| s["name"] == name);
    match (existing, value) {
        (Some(i), Some(v)) => settings[i]["value"] = json!(v),
        (Some(i), None) => {
            settings.remove(i);
        }
        (None, Some(v)) => settings.push(json!({ "name": name, "value": v })),
        (None, None) => {}
    }
}

const KV_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
const BLOB_OWNER: &str = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
const BLOB_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
const DATA: &str = "parameters('identityName')";
const HOST: &str = "parameters('hostIdentityName')";
const DATA_CLIENT_ID: &str = "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('identityName')), '2023-01-31').clientId]";
const HOST_STORAGE_SCOPE: &str =
    "[format('Microsoft.Storage/storageAccounts/{0}', parameters('hostStorageAccountName'))]";

#[test]
fn mutation_unverified_role_guid_is_caught() {
    // A made-up GUID in the place of Storage Blob Data Owner's, not one of Microsoft's built-in
    // roles: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
    let t = assignment_broken(BLOB_OWNER, HOST, |a| {
        a["properties"]["roleDefinitionId"] = json!(
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6c85d-7c52-4f4b-a1f2-3d6f9d8a2f4e')]"
        );
    });
    detects!(
        check_role_definitions(&t),
        "not a verified built-in role GUID"
    );
    detects!(
        check_role_plan(&t),
        "missing role assignment: Storage Blob Data Owner"
    );
}

#[test]
fn mutation_wrong_role_for_identity_is_caught() {
    // Data identity given Owner instead of Contributor: right GUID table, wrong plan.
    let t = assignment_broken(BLOB_CONTRIBUTOR, DATA, |a| {
        a["properties"]["roleDefinitionId"] = json!(format!(
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{BLOB_OWNER}')]"
        ));
    });
    detects!(
        check_role_plan(&t),
        "unexpected role assignment: Storage Blob Data Owner for Data"
    );
}

#[test]
fn mutation_data_role_on_the_host_account_is_caught() {
    // The app's Blob role must never reach the host's containers (keys, deployment package).
    let t = assignment_broken(BLOB_CONTRIBUTOR, DATA, |a| {
        a["scope"] = json!(HOST_STORAGE_SCOPE);
    });
    detects!(
        check_role_plan(&t),
        "unexpected role assignment: Storage Blob Data Contributor for Data on HostStorage"
    );
}

#[test]
fn mutation_secrets_role_on_wrong_identity_is_caught() {
    let t = assignment_broken(KV_SECRETS_USER, DATA, |a| {
        a["properties"]["principalId"] = json!(
            "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('hostIdentityName')), '2023-01-31').principalId]"
        );
    });
    detects!(
        check_role_plan(&t),
        "missing role assignment: Key Vault Secrets User for Data"
    );
}

#[test]
fn mutation_principal_from_unknown_expression_is_caught() {
    let t = assignment_broken(KV_SECRETS_USER, DATA, |a| {
        a["properties"]["principalId"] = json!("00000000-0000-0000-0000-000000000000");
    });
    detects!(check_role_plan(&t), "principalId");
}

#[test]
fn mutation_secrets_role_scoped_to_storage_is_caught() {
    let t = assignment_broken(KV_SECRETS_USER, DATA, |a| {
        a["scope"] = json!(
            "[format('Microsoft.Storage/storageAccounts/{0}', parameters('dataStorageAccountName'))]"
        );
    });
    detects!(
        check_role_plan(&t),
        "Key Vault Secrets User for Data on DataStorage"
    );
}

#[test]
fn mutation_scope_to_resource_group_is_caught() {
    let t = assignment_broken(BLOB_CONTRIBUTOR, DATA, |a| {
        a.as_object_mut().expect("object").remove("scope");
    });
    detects!(
        check_role_plan(&t),
        "scope \"\" is neither the vault nor one of the storage accounts"
    );
}

#[test]
fn mutation_optional_assignment_without_condition_is_caught() {
    let t = broken(|t| {
        let i = assignment_index(
            t,
            "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
            "deployerPrincipalId",
        );
        t["resources"][i]
            .as_object_mut()
            .expect("object")
            .remove("condition");
    });
    detects!(
        check_role_plan(&t),
        "must be gated by parameters('deployerPrincipalId')"
    );
}

#[test]
fn mutation_missing_depends_on_identity_is_caught() {
    let t = assignment_broken(KV_SECRETS_USER, DATA, |a| {
        a["dependsOn"] =
            json!(["[resourceId('Microsoft.KeyVault/vaults', parameters('keyVaultName'))]"]);
    });
    detects!(
        check_assignment_wiring(&t),
        "missing dependsOn resourceId('Microsoft.ManagedIdentity/userAssignedIdentities'"
    );
    detects!(
        check_dependencies(&t),
        "without dependsOn resourceId('Microsoft.ManagedIdentity/userAssignedIdentities'"
    );
}

#[test]
fn mutation_missing_depends_on_scope_is_caught() {
    let t = assignment_broken(BLOB_OWNER, HOST, |a| {
        a["dependsOn"] = json!([
            "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('hostIdentityName'))]"
        ]);
    });
    detects!(
        check_assignment_wiring(&t),
        "missing dependsOn resourceId('Microsoft.Storage/storageAccounts'"
    );
}

#[test]
fn mutation_random_assignment_name_is_caught() {
    let t = assignment_broken(BLOB_OWNER, HOST, |a| {
        a["name"] = json!("[newGuid()]");
    });
    detects!(check_assignment_wiring(&t), "is not a deterministic guid()");
}

#[test]
fn mutation_user_principal_type_for_identity_is_caught() {
    let t = assignment_broken(BLOB_OWNER, HOST, |a| {
        a["properties"]["principalType"] = json!("User");
    });
    detects!(check_assignment_wiring(&t), "principalType \"User\"");
}

#[test]
fn mutation_shared_key_access_is_caught() {
    for account in ["hostStorageAccountName", "dataStorageAccountName"] {
        let t = broken(|t| {
            let i = resources(t)
                .iter()
                .position(|r| r["name"] == format!("[parameters('{account}')]"))
                .unwrap();
            t["resources"][i]["properties"]["allowSharedKeyAccess"] = json!(true);
        });
        detects!(check_storage(&t), "allowSharedKeyAccess");
    }
}

#[test]
fn mutation_public_blobs_are_caught() {
    let t = broken(|t| {
        let i = resource_index(t, TYPE_STORAGE);
        t["resources"][i]["properties"]
            .as_object_mut()
            .expect("object")
            .remove("allowBlobPublicAccess");
    });
    detects!(check_storage(&t), "allowBlobPublicAccess");
    let t = broken(|t| {
        let i = resource_index(t, TYPE_CONTAINER);
        t["resources"][i]["properties"]["publicAccess"] = json!("Blob");
    });
    detects!(check_storage(&t), "publicAccess");
}

#[test]
fn mutation_one_storage_account_for_host_and_data_is_caught() {
    assert_setting_value_caught(
        "STORAGE_BLOB_URL",
        "[reference(resourceId('Microsoft.Storage/storageAccounts', parameters('hostStorageAccountName')), '2023-05-01').primaryEndpoints.blob]",
    );
}

#[test]
fn mutation_access_policy_vault_is_caught() {
    let t = broken(|t| {
        let i = resource_index(t, TYPE_VAULT);
        t["resources"][i]["properties"]["enableRbacAuthorization"] = json!(false);
    });
    detects!(check_vault(&t), "enableRbacAuthorization");
}

#[test]
fn mutation_setting_flex_refuses_is_caught() {
    for name in [
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
    ] {
        let t = broken(|t| set_app_setting(t, name, Some("x")));
        detects!(
            check_plan_settings(&t),
            &format!("site app setting {name} is one Flex Consumption refuses")
        );
    }
}

#[test]
fn mutation_dedicated_settings_drift_is_caught() {
    // A setting added to the site but not to the Dedicated appsettings would vanish on Dedicated.
    let t = broken(|t| set_app_setting(t, "SECRET_CACHE_SECONDS", Some("60")));
    detects!(
        check_plan_settings(&t),
        "missing or different [\"SECRET_CACHE_SECONDS\"]"
    );
    let t = broken(|t| {
        let i = resource_index(t, TYPE_SITE_CONFIG);
        t["resources"][i]["properties"]["FUNCTIONS_WORKER_RUNTIME"] = json!("dotnet");
    });
    detects!(
        check_no_keys(&t, &t.to_string()),
        "FUNCTIONS_WORKER_RUNTIME"
    );
    let t = broken(|t| {
        let i = resource_index(t, TYPE_SITE_CONFIG);
        t["resources"][i]
            .as_object_mut()
            .unwrap()
            .remove("condition");
    });
    detects!(check_plan_settings(&t), "must have condition");
}

#[test]
fn mutation_connection_string_host_storage_is_caught() {
    let connection = "[concat('DefaultEndpointsProtocol=https;AccountName=', parameters('hostStorageAccountName'), ';AccountKey=', listKeys(resourceId('Microsoft.Storage/storageAccounts', parameters('hostStorageAccountName')), '2023-05-01').keys[0].value)]";
    let t = broken(|t| set_app_setting(t, "AzureWebJobsStorage", Some(connection)));
    let problems = check_no_keys(&t, &t.to_string());
    assert_detects("check_no_keys", &problems, "\"listkeys\"");
    assert_detects("check_no_keys", &problems, "\"accountkey\"");
    assert_detects(
        "check_no_keys",
        &problems,
        "AzureWebJobsStorage (a connection string) is set",
    );
}

#[test]
fn mutation_implicit_host_identity_is_caught() {
    let t = broken(|t| set_app_setting(t, "AzureWebJobsStorage__credential", None));
    detects!(
        check_no_keys(&t, &t.to_string()),
        "AzureWebJobsStorage__credential must be managedidentity"
    );
    detects!(
        check_role_plan(&t),
        "AzureWebJobsStorage__credential must be managedidentity"
    );
    let t = broken(|t| set_app_setting(t, "AzureWebJobsStorage__clientId", None));
    detects!(
        check_no_keys(&t, &t.to_string()),
        "AzureWebJobsStorage__clientId must name the host identity"
    );
}

#[test]
fn mutation_host_switched_to_data_identity_is_caught() {
    // Pointing the host at the data identity makes the plan expect Blob Data Owner on it, so the
    // template's host-identity Owner grant no longer matches, and the data identity would reach
    // the host's containers.
    let t = broken(|t| set_app_setting(t, "AzureWebJobsStorage__clientId", Some(DATA_CLIENT_ID)));
    detects!(
        check_role_plan(&t),
        "missing role assignment: Storage Blob Data Owner for Data"
    );
    detects!(
        check_no_keys(&t, &t.to_string()),
        "names the Data identity, not the host identity"
    );
}

#[test]
fn mutation_missing_deployed_setting_is_caught() {
    for setting in APP_SETTINGS.iter().filter(|s| s.deployed) {
        let t = broken(|t| set_app_setting(t, setting.name, None));
        detects!(
            check_handler_settings(&t),
            &format!("app setting {} (", setting.name)
        );
    }
}

#[test]
fn mutation_vault_url_from_wrong_resource_is_caught() {
    assert_setting_value_caught(
        "KEY_VAULT_URL",
        "[reference(resourceId('Microsoft.Storage/storageAccounts', parameters('dataStorageAccountName')), '2023-05-01').primaryEndpoints.blob]",
    );
}

#[test]
fn mutation_duplicate_setting_is_caught() {
    let t = broken(|t| {
        let site = resource_index(t, TYPE_SITE);
        let settings = t["resources"][site]["properties"]["siteConfig"]["appSettings"]
            .as_array_mut()
            .expect("appSettings");
        settings.push(json!({ "name": "ALLOWED_SECRETS", "value": "*" }));
    });
    detects!(check_handler_settings(&t), "ALLOWED_SECRETS is set twice");
}

#[test]
fn mutation_five_field_schedule_is_caught() {
    let t =
        broken(|t| t["parameters"]["tokenRefreshSchedule"]["defaultValue"] = json!("*/5 * * * *"));
    detects!(check_timer_schedule(&t), "not six-field");
}

#[test]
fn mutation_windows_site_is_caught() {
    let t = broken(|t| {
        let i = resource_index(t, TYPE_SITE);
        t["resources"][i]["kind"] = json!("functionapp");
        t["resources"][i]["identity"]["type"] = json!("SystemAssigned");
    });
    let problems = check_site(&t);
    assert_detects("check_site", &problems, "site kind");
    assert_detects("check_site", &problems, "site identity type");
}

#[test]
fn mutation_always_on_on_flex_or_off_on_dedicated_is_caught() {
    for value in [
        json!(true),
        json!(false),
        json!("[if(variables('isFlex'), true(), true())]"),
    ] {
        let t = broken(|t| {
            let i = resource_index(t, TYPE_SITE);
            t["resources"][i]["properties"]["siteConfig"]["alwaysOn"] = value.clone();
        });
        detects!(check_site(&t), "alwaysOn");
    }
}

#[test]
fn mutation_dedicated_default_is_caught() {
    let t = broken(|t| t["parameters"]["hostingPlan"]["defaultValue"] = json!("Dedicated"));
    detects!(check_flex(&t), "hostingPlan.defaultValue");
}

#[test]
fn mutation_flex_runtime_memory_and_scale_are_caught() {
    let t = broken(|t| {
        t["variables"]["flexFunctionAppConfig"]["runtime"]["name"] = json!("node");
    });
    detects!(check_flex(&t), "flexFunctionAppConfig.runtime");
    let t = broken(|t| t["parameters"]["instanceMemoryMB"]["defaultValue"] = json!(2048));
    detects!(check_flex(&t), "the smallest size");
    let t = broken(|t| t["parameters"]["maximumInstanceCount"]["minValue"] = json!(1));
    detects!(check_flex(&t), "maximumInstanceCount");
    let t = broken(|t| {
        t["variables"]["flexFunctionAppConfig"]["scaleAndConcurrency"]["instanceMemoryMB"] =
            json!(4096);
    });
    detects!(check_flex(&t), "instanceMemoryMB");
}

#[test]
fn mutation_deployment_storage_with_a_key_or_the_wrong_identity_is_caught() {
    let t = broken(|t| {
        t["variables"]["flexFunctionAppConfig"]["deployment"]["storage"]["authentication"] = json!({"type": "StorageAccountConnectionString", "storageAccountConnectionStringName": "DEPLOYMENT_STORAGE_CONNECTION_STRING"});
    });
    detects!(check_flex(&t), "deployment storage authentication");
    detects!(
        check_no_keys(&t, &t.to_string()),
        "storageaccountconnectionstring"
    );
    let t = broken(|t| {
        t["variables"]["flexFunctionAppConfig"]["deployment"]["storage"]["authentication"]["userAssignedIdentityResourceId"] = json!(
            "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('identityName'))]"
        );
    });
    detects!(check_flex(&t), "deployment storage authentication");
    let t = broken(|t| {
        t["variables"]["deploymentContainerName"] = json!("[parameters('appName')]");
    });
    detects!(check_flex(&t), "deploymentContainerName");
}

#[test]
fn mutation_host_without_blob_role_on_the_package_account_is_caught() {
    let t = broken(|t| {
        let owner = assignment_index(t, BLOB_OWNER, HOST);
        t["resources"].as_array_mut().unwrap().remove(owner);
    });
    detects!(
        check_flex(&t),
        "holds no Blob role on the host storage account"
    );
}

#[test]
fn mutation_undeclared_parameter_is_caught() {
    let t =
        broken(|t| set_app_setting(t, "ALLOWED_SECRETS", Some("[parameters('allowedSecret')]")));
    let problems = check_well_formed(&t);
    assert_detects(
        "check_well_formed",
        &problems,
        "parameters('allowedSecret') is used but not declared",
    );
}

#[test]
fn mutation_dangling_depends_on_is_caught() {
    let t = broken(|t| {
        let i = resource_index(t, TYPE_SITE);
        t["resources"][i]["dependsOn"]
            .as_array_mut()
            .expect("dependsOn")
            .push(json!("[resourceId('Microsoft.Insights/components', 'ai')]"));
    });
    detects!(check_dependencies(&t), "is not a resource of this template");
}

#[test]
fn mutation_route_drift_is_caught() {
    let mut routes = http_function_routes(&package_root());
    routes.insert("GetSecret".into(), "secret/{id}".into());
    detects!(
        check_outputs(&template(), &routes, "api"),
        "variables.functionRoutes.GetSecret"
    );
    let mut routes = http_function_routes(&package_root());
    routes.insert("Extra".into(), "Extra".into());
    detects!(
        check_outputs(&template(), &routes, "api"),
        "output functionUrls lists"
    );
}

#[test]
fn expression_helpers_read_arm_expressions() {
    assert_eq!(compact("[format('a b', x ( 1 ))]"), "[format('a b',x(1))]");
    let text =
        "[subscriptionResourceId('T', 'g'), reference(resourceId('A/b', parameters('n')), '1').x]";
    assert_eq!(
        calls_of(text, "resourceId"),
        vec!["resourceId('A/b', parameters('n'))".to_string()]
    );
    assert_eq!(calls_of("f(')'), g()", "f"), vec!["f(')')".to_string()]);
    assert_eq!(
        quoted_names("parameters('a') + parameters('b')", "parameters"),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    assert_eq!(role_of("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')]").map(|r| r.0), Some("Storage Blob Data Contributor"));
    assert_eq!(
        role_of(
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '00000000-0000-0000-0000-000000000000')]"
        ),
        None
    );
    assert_eq!(
        split_top_level_comma("f(a, b), 'c,d'"),
        Some(("f(a, b)".to_string(), " 'c,d'".to_string()))
    );
}
