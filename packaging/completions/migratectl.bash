# bash completion for migratectl(1)                          -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Verbs come from the binary (migratectl __complete verbs), migration and backup names from the
# live daemon (migratectl __complete migrations|backups), on the socket the command line names.

# The instances that have a configuration: /etc/migrated/NAME.conf (example.conf is a template).
_migratectl_instances()
{
    local f names=()
    for f in /etc/migrated/*.conf; do
        [[ -e $f ]] || continue
        f=${f##*/}
        f=${f%.conf}
        [[ $f == example ]] || names+=("$f")
    done
    printf '%s\n' "${names[@]}"
}

# migratectl __complete WHAT, with the command line's --socket/--instance (or the one-shot mode's
# --database/--migrations/--config); briefly, quietly.
# $1: the migratectl being completed, $2: WHAT, the rest: the connection options.
_migratectl_names()
{
    local -a cmd=("$1" "${@:3}" __complete "$2")
    if type -P timeout &>/dev/null; then
        cmd=(timeout 2 "${cmd[@]}")
    fi
    "${cmd[@]}" 2>/dev/null
}

_migratectl()
{
    local cur prev words cword
    _init_completion || return

    local shared_opts="--socket --instance --json --color --help"

    # The command is the first word that is neither an option nor an option's argument;
    # --socket and --instance count wherever they are (they are accepted after the command too).
    local i command= command_index=0
    local -a conn=()
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --socket | --instance | --database | --migrations | --config)
                conn+=("${words[i]}" "${words[i + 1]}")
                ((i++))
                ;;
            --color)
                ((i++))
                ;;
            --socket=* | --instance=* | --database=* | --migrations=* | --config=*)
                conn+=("${words[i]}")
                ;;
            -*) ;;
            *)
                if [[ -z $command ]]; then
                    command=${words[i]}
                    command_index=$i
                fi
                ;;
        esac
    done

    case $prev in
        --socket | --database | --config | --output)
            _filedir
            return
            ;;
        --instance)
            COMPREPLY=($(compgen -W "$(_migratectl_instances)" -- "$cur"))
            return
            ;;
        --color)
            COMPREPLY=($(compgen -W "auto always never" -- "$cur"))
            return
            ;;
        --migrations)
            _filedir -d
            return
            ;;
        --to | --steps | --limit | --timeout)
            return # a number the shell cannot guess
            ;;
    esac

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$shared_opts --version --database --migrations --config" -- "$cur"))
        else
            local verbs
            verbs=$(_migratectl_names "${words[0]}" verbs)
            [[ -n $verbs ]] || verbs="status version up down redo plan history verify wait cancel backup
                backups restore lock-check mark baseline repair new help diff seed reset schema lint"
            COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
        fi
        return
    fi

    # Positional arguments after the command, options not counted.
    local n_args=0
    for ((i = command_index + 1; i < cword; i++)); do
        case ${words[i]} in
            --socket | --instance | --color | --to | --steps | --limit | --timeout | --migrations | --database | --output)
                ((i++))
                ;;
            -*) ;;
            *) ((n_args++)) ;;
        esac
    done

    local opts=$shared_opts args=
    case $command in
        status) opts+=" --check --drift" ;;
        up) opts+=" --to --dry-run --rehearse --per-migration --allow-out-of-order --seed" ;;
        reset) opts+=" --yes" ;;
        down) opts+=" --steps --to --dry-run --yes" ;;
        redo) opts+=" --yes" ;;
        plan)
            opts+=" --to --steps"
            ((n_args == 0)) && args="up down"
            ;;
        history) opts+=" --limit" ;;
        wait) opts+=" --timeout --strict" ;;
        mark)
            if ((n_args == 0)); then
                args="applied rolled-back"
            elif ((n_args == 1)); then
                args=$(_migratectl_names "${words[0]}" migrations "${conn[@]}")
            fi
            ;;
        repair)
            ((n_args == 0)) && args=$(_migratectl_names "${words[0]}" migrations "${conn[@]}")
            ;;
        restore)
            opts+=" --yes"
            ((n_args == 0)) && args=$(_migratectl_names "${words[0]}" backups "${conn[@]}")
            ;;
        help)
            ((n_args == 0)) && args=$(_migratectl_names "${words[0]}" verbs)
            ;;
        new) opts+=" --migrations" ;;
        lock-check) opts+=" --database" ;;
        schema) opts+=" --output --with-history" ;;
        lint)
            opts+=" --postgres"
            ((n_args == 0)) && args=$(compgen -d -- "$cur")
            ;;
        version | verify | diff | cancel | backup | backups | baseline) ;;
        *) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n $args ]]; then
        COMPREPLY=($(compgen -W "$args" -- "$cur"))
    fi
} &&
    complete -F _migratectl migratectl

# ex: filetype=sh
