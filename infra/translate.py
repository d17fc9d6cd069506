#!/usr/bin/env python3
"""Translates the SAM template into plain CloudFormation JSON, offline.

What CloudFormation's SAM transform would produce at deployment, made here with
aws-sam-translator and no AWS call: local paths are rewritten first, as `sam package` would
(each function's CodeUri becomes s3://<code bucket>/<binary>.zip, each state machine's
DefinitionUri becomes its parsed definition), and the managed policy loader returns nothing
(the template names no managed policy by name). Every state machine then has a
DefinitionString and its DefinitionSubstitutions, which is what cfn-lint, cfn-guard, cfripper,
the infrastructure tests and the local stack read.

usage: .venv/bin/python infra/translate.py [--template infra/template.yaml] --output OUT.json
           [--code-bucket BUCKET] [--code-prefix PREFIX] [--parameter Key=Value ...]

--code-prefix (default none) goes before each zip's name, e.g. a commit per upload: a function's
code changes in CloudFormation only when its S3 key does (docs/deploy.md).
"""

import argparse
import copy
import json
import os
import sys

INFRA = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEMPLATE = os.path.join(INFRA, "template.yaml")
DEFAULT_CODE_BUCKET = "hhvm-pipeline-artifacts"
# Only to fill in AWS::Region when the caller gives none: nothing is contacted.
DEFAULT_REGION = "us-west-2"


class TranslateError(Exception):
    pass


def load_template(path):
    """The SAM template as plain data, CloudFormation's short tags (!Ref, !Sub, …) expanded."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, suffix, node):
        # !Ref and !Condition keep their names; every other tag is a Fn:: function.
        name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if suffix == "GetAtt":
                # !GetAtt Resource.Attribute (the attribute may itself contain dots).
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    try:
        with open(path, encoding="utf-8") as f:
            template = yaml.load(f, Loader=Loader)
    except OSError as error:
        raise TranslateError(f"cannot read the template: {error}") from error
    except yaml.YAMLError as error:
        raise TranslateError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TranslateError(f"{path} has no Resources section")
    return template


def function_binary(logical_id, resource):
    binary = (resource.get("Metadata") or {}).get("BuildProperties", {}).get("Binary")
    if not isinstance(binary, str) or not binary:
        raise TranslateError(f"function {logical_id} has no Metadata.BuildProperties.Binary (its [[bin]] name)")
    return binary


def package_local_paths(template, template_dir, code_bucket, code_prefix=""):
    """CodeUri and DefinitionUri rewritten the way `sam package` would."""
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        properties = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://{code_bucket}/{code_prefix}{function_binary(logical_id, resource)}.zip"
        elif kind == "AWS::Serverless::StateMachine":
            uri = properties.pop("DefinitionUri", None)
            if not isinstance(uri, str):
                raise TranslateError(f"state machine {logical_id} has no DefinitionUri naming a local file")
            path = os.path.normpath(os.path.join(template_dir, uri))
            try:
                with open(path, encoding="utf-8") as f:
                    properties["Definition"] = json.load(f)
            except OSError as error:
                raise TranslateError(f"state machine {logical_id}: cannot read {uri}: {error}") from error
            except json.JSONDecodeError as error:
                raise TranslateError(f"state machine {logical_id}: {uri} is not JSON: {error}") from error
    # The Globals CodeUri (the workspace root) is replaced per function above.
    globals_function = (template.get("Globals") or {}).get("Function") or {}
    globals_function.pop("CodeUri", None)


class NoManagedPolicies:
    """The managed policy loader: the template names no managed policy by name, so no IAM call."""

    def load(self):
        return {}


def translate(template, parameter_values):
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    # A session only to say which region ARNs are for; it makes no call.
    session = boto3.session.Session(region_name=parameter_values.get("AWS::Region", DEFAULT_REGION))
    translator = Translator(None, Parser(), boto_session=session)
    try:
        return translator.translate(
            copy.deepcopy(template),
            parameter_values=dict(parameter_values),
            get_managed_policy_map=NoManagedPolicies().load,
        )
    except InvalidDocumentException as error:
        causes = "; ".join(cause.message for cause in error.causes)
        raise TranslateError(f"the SAM translator refused the template: {causes}") from error


def parse_parameters(pairs):
    values = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise TranslateError(f"--parameter {pair!r}: expected Key=Value")
        values[key] = value
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, help="the SAM template (default: infra/template.yaml)")
    parser.add_argument("--output", required=True, help="where the CloudFormation JSON goes ('-' for stdout)")
    parser.add_argument(
        "--code-bucket",
        default=DEFAULT_CODE_BUCKET,
        help=f"bucket named in the functions' s3:// code URIs (default: {DEFAULT_CODE_BUCKET})",
    )
    parser.add_argument(
        "--code-prefix",
        default="",
        help="key prefix of the zips in the code bucket, e.g. 'COMMIT/' (default: none)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter value for the translator (repeatable); AWS::Region=... sets the region",
    )
    args = parser.parse_args(argv)
    try:
        parameter_values = parse_parameters(args.parameter)
    except TranslateError as error:
        parser.error(str(error))
    try:
        template = load_template(args.template)
        template_dir = os.path.dirname(os.path.abspath(args.template))
        package_local_paths(template, template_dir, args.code_bucket, args.code_prefix)
        translated = translate(template, parameter_values)
        text = json.dumps(translated, indent=2) + "\n"
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
    except TranslateError as error:
        print(f"translate.py: {args.template}: {error}", file=sys.stderr)
        return 1
    except ImportError as error:
        print(f"translate.py: {error}; run bin/setup-tools and use .venv/bin/python", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
