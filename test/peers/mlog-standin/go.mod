module monis.app/mlog

go 1.22

require k8s.io/klog/v2 v2.120.1
