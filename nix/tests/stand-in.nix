# STAND-IN, NOT NIXPKGS.
#
# nixpkgs cannot be fetched where CI runs, so the offline checks evaluate our
# Nix files against this file instead: the few `lib` functions, option types
# and `pkgs` attributes they use, reimplemented with builtins only, plus a tiny
# module evaluator. It is deliberately small and strict:
#   - options: defaults, user values, type checks, unknown-option errors,
#     submodules with a freeformType. No merging of several definitions, no
#     imports; `mkDefault` values are left wrapped (tests look at the
#     priority), and `mergeDefinitions` shows how NixOS would merge one
#     option's definitions by priority.
#   - config: `mkIf` is resolved, at any depth of attribute sets.
#   - pkgs.formats.toml: `generate` returns { name, text } instead of a
#     derivation, so tests can read the TOML that nixpkgs would write
#     (nixpkgs writes the same data through remarshal at build time).
# Anything else the evaluated files touch fails loudly ("stand-in: ...").
# The real thing is checked by `nix flake check` (package build, VM test).
let
  inherit (builtins)
    all
    any
    attrNames
    attrValues
    concatMap
    concatStringsSep
    elem
    filter
    genList
    isAttrs
    isBool
    isFloat
    isFunction
    isInt
    isList
    isString
    listToAttrs
    mapAttrs
    match
    toJSON
    ;

  concatMapStrings = f: l: concatStringsSep "" (map f l);
  concatMapStringsSep = sep: f: l: concatStringsSep sep (map f l);
  filterAttrs =
    pred: set:
    listToAttrs (
      concatMap (
        name:
        if pred name set.${name} then
          [
            {
              inherit name;
              value = set.${name};
            }
          ]
        else
          [ ]
      ) (attrNames set)
    );

  # ---- option types: { name, description, check } -------------------------
  mkType = name: description: check: {
    _type = "option-type";
    inherit name description check;
  };

  types = {
    str = mkType "str" "string" isString;
    strMatching =
      pattern: mkType "strMatching" "string matching the pattern ${pattern}" (x: isString x && match pattern x != null);
    bool = mkType "bool" "boolean" isBool;
    int = mkType "int" "signed integer" isInt;
    ints = {
      positive = mkType "positiveInt" "positive integer, meaning >0" (x: isInt x && x > 0);
      unsigned = mkType "unsignedInt" "unsigned integer, meaning >=0" (x: isInt x && x >= 0);
      between =
        lo: hi:
        mkType "intBetween" "integer between ${toString lo} and ${toString hi} (both inclusive)" (
          x: isInt x && x >= lo && x <= hi
        );
    };
    numbers.between =
      lo: hi:
      mkType "numberBetween" "integer or floating point number between ${toJSON lo} and ${toJSON hi} (both inclusive)" (
        x: (isInt x || isFloat x) && x >= lo && x <= hi
      );
    package = mkType "package" "package" (x: isAttrs x && (x.type or null) == "derivation");
    nullOr = t: mkType "nullOr" "null or ${t.description}" (x: x == null || t.check x);
    enum = values: mkType "enum" "one of ${concatMapStringsSep ", " toJSON values}" (x: elem x values);
    listOf = t: mkType "listOf" "list of ${t.description}" (x: isList x && all t.check x);
    attrsOf =
      t: mkType "attrsOf" "attribute set of ${t.description}" (x: isAttrs x && all t.check (attrValues x));
    oneOf =
      ts: mkType "oneOf" (concatMapStringsSep " or " (t: t.description) ts) (x: any (t: t.check x) ts);
    # Only the attribute-set form of a submodule: { options, freeformType? }.
    submodule =
      module:
      if isFunction module then
        throw "stand-in: types.submodule takes only an attribute set here"
      else
        mkType "submodule" "submodule" isAttrs // { inherit module; };
  };

  # ---- the lib functions our files use --------------------------------------
  lib = {
    inherit types;

    mkOption =
      {
        type,
        description,
        default ? null,
        defaultText ? null,
        example ? null,
      }@args:
      args
      // {
        _type = "option";
        hasDefault = args ? default;
      };

    mkEnableOption =
      name:
      lib.mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = "Whether to enable ${name}.";
      };

    # Only the form `mkPackageOption pkgs "name" { }`.
    mkPackageOption =
      pkgs: name: extra:
      if extra != { } then
        throw "stand-in: mkPackageOption supports only an empty attribute set"
      else
        lib.mkOption {
          type = types.package;
          default = pkgs.${name};
          defaultText = lib.literalExpression "pkgs.${name}";
          description = "The ${name} package to use.";
        };

    # As lib.mkOverride 1000: loses to any plain definition (priority 100).
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };

    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };

    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };

    range = first: last: if first > last then [ ] else genList (i: first + i) (last - first + 1);

    unique = builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    inherit filterAttrs concatMapStrings;

    removePrefix =
      prefix: s:
      let
        n = builtins.stringLength prefix;
      in
      if builtins.substring 0 n s == prefix then builtins.substring n (-1) s else s;
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: l: if cond then l else [ ];
    inherit attrNames concatStringsSep filter;
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: set: if cond then set else { };
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
    inherit mapAttrs;
    inherit concatMapStringsSep;
    importTOML = path: builtins.fromTOML (builtins.readFile path);

    licenses.mit = {
      spdxId = "MIT";
      shortName = "mit";
    };
    platforms.linux = [
      "aarch64-linux"
      "x86_64-linux"
    ];
  };

  # ---- pkgs.formats.toml ----------------------------------------------------
  tomlKey = k: if match "[A-Za-z0-9_-]+" k != null then k else toJSON k;

  tomlValue =
    v:
    if isBool v then
      (if v then "true" else "false")
    else if isInt v then
      toString v
    else if isFloat v then
      # builtins.toJSON writes 2.0 as "2", which TOML would read as an integer.
      (
        let
          s = toJSON v;
        in
        if match ".*[.eE].*" s != null then s else "${s}.0"
      )
    else if isString v then
      toJSON v # JSON string escapes are valid TOML basic-string escapes
    else if isList v then
      "[" + concatMapStringsSep ", " tomlValue v + "]"
    else if isAttrs v then
      "{ " + concatMapStringsSep ", " (k: "${tomlKey k} = ${tomlValue v.${k}}") (attrNames v) + " }"
    else
      throw "stand-in: cannot write ${builtins.typeOf v} as TOML";

  # Plain keys first, then one [table] per nested attribute set.
  tomlTable =
    path: set:
    let
      names = attrNames set;
      isTable = n: isAttrs set.${n};
    in
    (if path == [ ] then "" else "[${concatMapStringsSep "." tomlKey path}]\n")
    + concatMapStrings (n: "${tomlKey n} = ${tomlValue set.${n}}\n") (filter (n: !isTable n) names)
    + concatMapStrings (n: "\n" + tomlTable (path ++ [ n ]) set.${n}) (filter isTable names);

  tomlValueCheck =
    v:
    isBool v
    || isInt v
    || isFloat v
    || isString v
    || (isList v && all tomlValueCheck v)
    || (isAttrs v && all tomlValueCheck (attrValues v));

  pkgs = {
    formats.toml =
      _:
      {
        type = mkType "tomlValue" "TOML value" tomlValueCheck;
        generate = name: value: {
          _standIn = "pkgs.formats.toml generate";
          inherit name;
          text = tomlTable [ ] value;
        };
      };

    queuectl = {
      type = "derivation";
      name = "queuectl-stand-in";
      outPath = "/nix/store/00000000000000000000000000000000-queuectl-stand-in";
    };
  };

  # ---- a tiny module evaluator ----------------------------------------------
  isOption = x: isAttrs x && (x._type or null) == "option";

  checked =
    path: type: value:
    if type.check value then
      value
    else
      throw "stand-in: the option `${path}' is not of type ${type.description}: ${toJSON value}";

  # The value of one option: the user's definition if any, else the default.
  optionValue =
    path: opt: defined:
    if opt.type.name == "submodule" then
      submoduleValue path opt.type.module (if defined != null then defined else opt.default)
    else if defined != null then
      checked path opt.type defined
    else if opt.hasDefault then
      checked path opt.type opt.default
    else
      throw "stand-in: the option `${path}' is used but not defined";

  submoduleValue =
    path: module: defined:
    let
      declared = module.options or { };
      extra = filter (n: !(declared ? ${n})) (attrNames defined);
    in
    mapAttrs (n: opt: optionValue "${path}.${n}" opt (defined.${n} or null)) declared
    // listToAttrs (
      map (n: {
        name = n;
        value =
          if module ? freeformType then
            checked "${path}.${n}" module.freeformType defined.${n}
          else
            throw "stand-in: the option `${path}.${n}' does not exist";
      }) extra
    );

  # Walk the declared option tree alongside the user's definitions.
  optionTree =
    path: declared: defined:
    let
      unknown = filter (n: !(declared ? ${n})) (attrNames defined);
    in
    if unknown != [ ] then
      throw "stand-in: the option `${path}${builtins.head unknown}' does not exist"
    else
      mapAttrs (
        n: d:
        if isOption d then
          optionValue "${path}${n}" d (defined.${n} or null)
        else
          optionTree "${path}${n}." d (defined.${n} or { })
      ) declared;

  isIfFalse = x: isAttrs x && (x._type or null) == "if" && !x.condition;

  resolve =
    v:
    if isAttrs v && (v._type or null) == "if" then
      (
        if !isBool v.condition then
          throw "stand-in: mkIf needs a boolean condition"
        else if v.condition then
          resolve v.content
        else
          { }
      )
    else if isAttrs v && (v.type or null) != "derivation" && !(v ? _standIn) then
      mapAttrs (_: resolve) (filterAttrs (_: x: !isIfFalse x) v)
    else
      v;

  # Evaluates `module` (a NixOS-style module function) with the user's option
  # definitions `defined`. Returns the option values it sees as `config` and
  # the configuration it produces, with mkIf resolved. `others` stands for
  # what the rest of a NixOS configuration would hold: only `users.users`
  # and `users.groups` (given as NixOS would see them, defaults filled in).
  evalModule =
    {
      module,
      defined,
      others ? { },
    }:
    let
      args = {
        inherit lib pkgs;
        config = {
          users = {
            users = { };
            groups = { };
          }
          // (others.users or { });
        }
        // options;
      };
      produced = module args;
      options = optionTree "" produced.options defined;
    in
    {
      inherit options;
      config = resolve produced.config;
    };

  # How NixOS merges several definitions of one option: only those of the
  # best (lowest) priority count, a plain value having priority 100; they
  # must agree, else it is a conflict (which needed mkForce).
  mergeDefinitions =
    defs:
    let
      priority = d: if isAttrs d && (d._type or null) == "override" then d.priority else 100;
      value = d: if isAttrs d && (d._type or null) == "override" then d.content else d;
      best = builtins.foldl' (m: d: if priority d < m then priority d else m) 10000 defs;
      winners = map value (filter (d: priority d == best) defs);
    in
    if all (v: v == builtins.head winners) winners then
      builtins.head winners
    else
      throw "stand-in: conflicting definitions at priority ${toString best}";

  # The tests' verdict: a message when every check is true, else a throw
  # naming the failed ones (so nix-instantiate exits non-zero).
  report =
    name: checks:
    let
      names = builtins.attrNames checks;
      failed = builtins.filter (n: checks.${n} != true) names;
      total = toString (builtins.length names);
    in
    if failed == [ ] then
      "${name}: ${total} checks passed"
    else
      throw "${name}: ${toString (builtins.length failed)} of ${total} checks failed: ${builtins.concatStringsSep "; " failed}";
in
{
  inherit
    lib
    pkgs
    evalModule
    mergeDefinitions
    report
    ;
  toml = tomlTable [ ];
}
