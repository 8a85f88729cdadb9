# bash completion for sikkerctl; install as
# /usr/share/bash-completion/completions/sikkerctl
_sikkerctl() {
    local cur prev cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        --address|--timeout|-n|--for|--comment) return ;;
    esac
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --address|--timeout) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $cmd in
        "") COMPREPLY=($(compgen -W "status reload pull block unblock whitelist check top feeds version hub help --address --timeout" -- "$cur")) ;;
        status|version|feeds) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
        check) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
        top) COMPREPLY=($(compgen -W "-n --json" -- "$cur")) ;;
        block) COMPREPLY=($(compgen -W "--for --comment" -- "$cur")) ;;
        pull)
            # Feed names as status lists them.
            COMPREPLY=($(compgen -W "$(sikkerctl status --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p')" -- "$cur")) ;;
        hub)
            if ((COMP_CWORD == i + 1)); then
                COMPREPLY=($(compgen -W "status" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--json" -- "$cur"))
            fi ;;
        whitelist)
            if ((COMP_CWORD == i + 1)); then
                COMPREPLY=($(compgen -W "add remove list" -- "$cur"))
            elif [[ ${COMP_WORDS[i+1]} == list ]]; then
                COMPREPLY=($(compgen -W "--json" -- "$cur"))
            elif [[ ${COMP_WORDS[i+1]} == remove ]]; then
                COMPREPLY=($(compgen -W "$(sikkerctl whitelist list 2>/dev/null)" -- "$cur"))
            fi ;;
    esac
}
complete -F _sikkerctl sikkerctl
