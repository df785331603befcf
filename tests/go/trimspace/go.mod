module gobuildkey.test/trimspace

go 1.19
