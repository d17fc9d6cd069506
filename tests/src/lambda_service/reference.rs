//! Which function an Invoke request names. AWS accepts, in the path's `FunctionName`
//! (URL-encoded): a name (`my-function`), a partial ARN (`123456789012:function:my-function`) or
//! an ARN (`arn:aws:lambda:us-east-1:123456789012:function:my-function`), each with an optional
//! `:QUALIFIER` (a version or alias).

use percent_encoding::percent_decode_str;

use crate::machines::function_arn;

const INVOKE_PREFIX: &str = "/2015-03-31/functions/";
const INVOKE_SUFFIX: &str = "/invocations";

/// A function as an invocation names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FunctionReference {
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionReference {
    /// The reference of an Invoke path (`/2015-03-31/functions/{FunctionName}/invocations`),
    /// or `None` for any other path. A path of that shape whose name is malformed names a
    /// function that does not exist, so it is kept, as given, to be answered as not found.
    pub fn of_invoke_path(path: &str) -> Option<Result<FunctionReference, String>> {
        let encoded = path.strip_prefix(INVOKE_PREFIX)?.strip_suffix(INVOKE_SUFFIX)?;
        if encoded.is_empty() || encoded.contains('/') {
            return None;
        }
        let decoded = percent_decode_str(encoded).decode_utf8_lossy();
        Some(FunctionReference::parse(&decoded).ok_or_else(|| decoded.into_owned()))
    }

    /// `name`, `name:qualifier`, `account:function:name[:qualifier]` or
    /// `arn:partition:lambda:region:account:function:name[:qualifier]`.
    pub fn parse(reference: &str) -> Option<FunctionReference> {
        let parts: Vec<&str> = reference.split(':').collect();
        let name_and_qualifier = match parts.as_slice() {
            ["arn", _partition, "lambda", _region, _account, "function", rest @ ..] => rest,
            [_account, "function", rest @ ..] => rest,
            rest => rest,
        };
        let (name, qualifier) = match name_and_qualifier {
            [name] => (*name, None),
            [name, qualifier] if !qualifier.is_empty() => (*name, Some(qualifier.to_string())),
            _ => return None,
        };
        let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid_name.then(|| FunctionReference {
            name: name.to_string(),
            qualifier,
        })
    }

    /// The ARN the invocation used, qualifier included: what the function sees as
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn invoked_arn(&self) -> String {
        match &self.qualifier {
            Some(qualifier) => format!("{}:{qualifier}", function_arn(&self.name)),
            None => function_arn(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, qualifier: Option<&str>) -> Option<FunctionReference> {
        Some(FunctionReference {
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
        })
    }

    #[test]
    fn names_partial_arns_and_arns_with_and_without_qualifiers() {
        assert_eq!(
            FunctionReference::parse("shift-version"),
            reference("shift-version", None)
        );
        assert_eq!(
            FunctionReference::parse("shift-version:$LATEST"),
            reference("shift-version", Some("$LATEST"))
        );
        assert_eq!(
            FunctionReference::parse("123456789012:function:shift-version"),
            reference("shift-version", None)
        );
        assert_eq!(
            FunctionReference::parse("123456789012:function:shift-version:live"),
            reference("shift-version", Some("live"))
        );
        assert_eq!(
            FunctionReference::parse("arn:aws:lambda:us-east-1:123456789012:function:shift-version"),
            reference("shift-version", None)
        );
        assert_eq!(
            FunctionReference::parse("arn:aws:lambda:us-east-1:123456789012:function:shift-version:7"),
            reference("shift-version", Some("7"))
        );
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "a:b:c",
            "name:",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:function:a:b:c",
            "bad name",
        ] {
            assert_eq!(FunctionReference::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_the_url_encoded_name_of_an_invoke_path() {
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ashift-version%3A%24LATEST/invocations";
        assert_eq!(
            FunctionReference::of_invoke_path(path).and_then(Result::ok),
            reference("shift-version", Some("$LATEST"))
        );
        assert_eq!(
            FunctionReference::of_invoke_path("/2015-03-31/functions/a%20b/invocations"),
            Some(Err("a b".to_string()))
        );
        for other in [
            "/2015-03-31/functions/",
            "/2015-03-31/functions/shift-version",
            "/2015-03-31/functions/shift-version/configuration",
            "/2015-03-31/functions//invocations",
            "/2015-03-31/functions/a/b/invocations",
            "/moto-api/data.json",
        ] {
            assert_eq!(FunctionReference::of_invoke_path(other), None, "{other}");
        }
    }

    #[test]
    fn the_invoked_arn_keeps_the_qualifier() {
        assert_eq!(
            FunctionReference::parse("shift-version:live").unwrap().invoked_arn(),
            "arn:aws:lambda:us-east-1:123456789012:function:shift-version:live"
        );
        assert_eq!(
            FunctionReference::parse("shift-version").unwrap().invoked_arn(),
            "arn:aws:lambda:us-east-1:123456789012:function:shift-version"
        );
    }
}
